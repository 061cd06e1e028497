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


def run(n_tasks: int = 300, repeats: int = 5) -> dict:
    catalog = load_catalog()
    tasks = generate_tasks("seen", n_tasks, seed=0, catalog=catalog)
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
                value = read_path(json.loads(env.step(ToolCall(call.name, call.arguments)).observation.content), call.read)
            env.step(Answer(str(value)))

    bare_s = _best_of(repeats, bare)
    env_s = _best_of(repeats, scripted_episodes)
    env.close()
    return {
        "calls": len(calls),
        "episodes": len(tasks),
        "bare_us_per_call": 1e6 * bare_s / len(calls),
        "env_us_per_call": 1e6 * env_s / len(calls),
        "calls_per_s": len(calls) / env_s,
        "episodes_per_s": len(tasks) / env_s,
        "overhead_ratio": env_s / bare_s,
    }


def report(result: dict) -> str:
    return "\n".join(
        [
            "## Environment throughput (scripted gold-replay policy, seen split)",
            f"episodes: {result['episodes']}, tool calls: {result['calls']}",
            f"bare function:   {result['bare_us_per_call']:8.1f} us/call (baseline)",
            f"through ToolEnv: {result['env_us_per_call']:8.1f} us/call (reset, validation, worker thread, JSON, answer check)",
            f"throughput:      {result['calls_per_s']:8.0f} calls/s, {result['episodes_per_s']:.0f} episodes/s",
            f"ratio env/bare:  {result['overhead_ratio']:8.1f}x",
            "command: python -m bench env",
        ]
    )
