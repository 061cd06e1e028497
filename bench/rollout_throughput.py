"""Batched multi-turn rollout against the sequential baseline, on the embedded SmolLM2-135M (CPU).

Both arms run the same seen-split tasks greedily with the same budgets; the
environment's share is the time the same actions take when replayed through
fresh environments alone (reset + step), over each arm's rollout time.

Run: python -m bench rollout
"""

from __future__ import annotations

import time

from labkit.env import EnvConfig, ToolEnv
from labkit.models import load_embedded_model, load_tokenizer
from labkit.rollout import GenerationConfig, rollout_batch, sequential_rollouts
from labkit.tasks import generate_tasks
from labkit.tools import load_catalog


def _env_seconds(catalog, env_config: EnvConfig, rollouts) -> float:
    """The environment's work in these rollouts, timed alone: every episode's reset and steps, replayed."""
    env = ToolEnv(catalog, env_config)
    start = time.perf_counter()
    for r in rollouts:
        env.reset(r.trajectory.task)
        for step in r.trajectory.steps:
            env.step(step.action)
    seconds = time.perf_counter() - start
    env.close()
    return seconds


def _read_tokens(rollout, reuse_cache: bool) -> int:
    """Transcript tokens the model reads before writing its turns (padding aside).

    Without the cache every turn re-reads the whole transcript so far; with it,
    each token is read once, up to the start of the model's last turn.
    """
    starts = [i for i, bit in enumerate(rollout.owner) if bit and not (i and rollout.owner[i - 1])]
    if not starts:
        return 0
    return starts[-1] if reuse_cache else sum(starts)


def run(n_tasks: int = 16, max_new_tokens: int = 64, max_turns: int = 3) -> dict:
    tokenizer, model, catalog = load_tokenizer(), load_embedded_model(), load_catalog()
    tasks = generate_tasks("seen", n_tasks, seed=0, catalog=catalog)
    env_config = EnvConfig(max_turns=max_turns)
    gen = GenerationConfig(max_new_tokens=max_new_tokens, batch_size=n_tasks)
    rollout_batch(
        model, tokenizer, tasks[:1], catalog, env_config, GenerationConfig(max_new_tokens=2), progress=False
    )  # warm-up
    arms, outputs = [], {}
    for name, engine, reuse_cache in (
        ("sequential (baseline)", sequential_rollouts, False),
        ("batched", rollout_batch, True),
    ):
        start = time.perf_counter()
        rollouts = engine(model, tokenizer, tasks, catalog, env_config, gen, progress=False)
        seconds = time.perf_counter() - start
        tokens = sum(r.generated_tokens for r in rollouts)
        env_seconds = _env_seconds(catalog, env_config, rollouts)
        outputs[name] = [r.token_ids for r in rollouts]
        arms.append(
            {
                "arm": name,
                "seconds": seconds,
                "turns": sum(len(r.trajectory.steps) for r in rollouts),
                "tokens": tokens,
                "read": sum(_read_tokens(r, reuse_cache) for r in rollouts),
                "episodes_per_s": len(rollouts) / seconds,
                "tokens_per_s": tokens / seconds,
                "env_ms": 1000 * env_seconds,
                "env_share": env_seconds / seconds,
            }
        )
    return {
        "episodes": n_tasks,
        "max_new_tokens": max_new_tokens,
        "max_turns": max_turns,
        "arms": arms,
        "speedup": arms[0]["seconds"] / arms[1]["seconds"],
        "identical": outputs["batched"] == outputs["sequential (baseline)"],
    }


def report(results: dict) -> str:
    lines = [
        f"## Rollout throughput: SmolLM2-135M (CPU, fp32, greedy), {results['episodes']} seen-split episodes,",
        f"max_new_tokens={results['max_new_tokens']} per turn, max_turns={results['max_turns']}",
        "",
        "| arm | seconds | turns | transcript tokens read | generated tokens | "
        "episodes/s | generated tokens/s | env ms | env share of rollout time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in results["arms"]:
        lines.append(
            f"| {a['arm']} | {a['seconds']:.1f} | {a['turns']} | "
            f"{a['read']} | {a['tokens']} | {a['episodes_per_s']:.3f} "
            f"| {a['tokens_per_s']:.1f} | {a['env_ms']:.1f} | {100 * a['env_share']:.3f}% |"
        )
    lines += [
        "",
        f"batched / sequential throughput: {results['speedup']:.2f}x; "
        f"token-identical transcripts in both arms: {'yes' if results['identical'] else 'no'}",
        f"Batched: one generate call per turn for all live episodes (batch_size={results['episodes']}), left-padded,",
        "keeping the KV cache between turns. Sequential (the naive loop): one episode at a time, batch of 1,",
        "re-reading the whole transcript every turn. Transcript tokens read are counted without padding.",
        "command: python -m bench rollout",
    ]
    return "\n".join(lines)
