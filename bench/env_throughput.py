"""Environment throughput with a scripted policy, and its overhead per call against the bare function.

Run: python -m bench env
"""

from __future__ import annotations

import json
import time

from labkit.env import Answer, ToolCall, ToolEnv
from labkit.tasks import generate_tasks
from labkit.tools import load_catalog, read_path


def _best_of(repeats: int, fn) -> float:
    return min(_timed(fn) for _ in range(repeats))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _read(content: str, path: str | None):
    """The gold read of an observation, or None where an evolved tool's output no longer has it."""
    try:
        return read_path(json.loads(content), path)
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def run(n_tasks: int = 300, repeats: int = 5) -> list[dict]:
    catalog = load_catalog()
    return [measure(catalog, split, n_tasks, repeats) for split in ("seen", "evolved")]


def measure(catalog, split: str, n_tasks: int, repeats: int) -> dict:
    tasks = generate_tasks(split, n_tasks, seed=0, catalog=catalog)
    calls = [call for task in tasks for call in task.calls]
    env = ToolEnv(catalog)

    def bare() -> None:
        for call in calls:
            catalog[call.name].func(**call.arguments)

    def scripted_episodes() -> None:
        # The gold-replay policy: the cheapest possible agent, so the time is the environment's.
        for task in tasks:
            env.reset(task)
            value = None
            for call in task.calls:
                value = _read(env.step(ToolCall(call.name, call.arguments)).observation.content, call.read)
            env.step(Answer(str(value)))

    bare_s = _best_of(repeats, bare)
    env_s = _best_of(repeats, scripted_episodes)
    env.close()
    return {
        "split": split,
        "calls": len(calls),
        "episodes": len(tasks),
        "bare_us_per_call": 1e6 * bare_s / len(calls),
        "env_us_per_call": 1e6 * env_s / len(calls),
        "calls_per_s": len(calls) / env_s,
        "episodes_per_s": len(tasks) / env_s,
        "overhead_ratio": env_s / bare_s,
    }


def report(results: list[dict]) -> str:
    lines = [
        "## Environment throughput: a scripted policy replays each task's documented gold calls",
        "(on the evolved split many of those calls fail, so error paths are timed too)",
        "",
        "| split | episodes | calls | bare function us/call (baseline) "
        "| ToolEnv us/call | env/bare | calls/s | episodes/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['split']} | {r['episodes']} | {r['calls']} | "
            f"{r['bare_us_per_call']:.1f} | {r['env_us_per_call']:.1f} "
            f"| {r['overhead_ratio']:.1f}x | {r['calls_per_s']:.0f} | {r['episodes_per_s']:.0f} |"
        )
    lines += [
        "",
        "ToolEnv time per call includes reset (building and evolving the toolset), validation,",
        "the worker-thread hop that enforces timeouts, JSON serialisation and answer checking.",
        "command: python -m bench env",
    ]
    return "\n".join(lines)
