"""One evaluation, as the ablation runs it, on both rollout engines.

The shipped SFT-trial adapter plays the same evolved tasks (seed 0) with the ablation's evaluation settings at
the cpu profile (:func:`labkit.ablation.eval_config`: 8 turns of 96 tokens), once through the in-process engine
(the baseline), then twice through vLLM's CPU build: first as a process's first evaluation, which starts the
server, then as every later one, which finds it running (evaluations in one process share it) and only pushes
the adapter's weights. Each time is the whole ``evaluate`` call, loading the adapter included. 32 tasks are two
of the in-process engine's batches of 16.

Run: python -m bench evaluation   (needs `make vllm`)
"""

from __future__ import annotations

import os
import tempfile
import time

from labkit.ablation import AblationConfig, eval_config
from labkit.engine import stop_shared_engine, vllm_missing_reason
from labkit.evaluate import evaluate

ARMS = (
    ("transformers", "in-process"),
    ("vllm", "vLLM, first evaluation (starts the server)"),
    ("vllm", "vLLM, a later evaluation (server running)"),
)


def run(n_tasks: int = 32, policy: str = "data/adapters/sft-trial", split: str = "evolved") -> dict:
    missing = vllm_missing_reason()
    if missing:
        raise SystemExit(f"bench evaluation: {missing}")
    stop_shared_engine()
    arms = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (engine, name) in enumerate(ARMS):
            ablation = AblationConfig(profile="cpu", n=n_tasks, seeds=1, engine=engine)
            config = eval_config(ablation, "sft-trial", split, policy=policy, out=f"{tmp}/{i}")
            start = time.perf_counter()
            metrics = evaluate(config, progress=False)
            seconds = time.perf_counter() - start
            arms.append(
                {
                    "arm": name,
                    "seconds": seconds,
                    "success": metrics["success"],
                    "tokens_per_episode": metrics["tokens_per_episode"],
                }
            )
    stop_shared_engine()
    for arm in arms:
        arm["ratio"] = arms[0]["seconds"] / arm["seconds"]
    budgets = f"{config.max_turns} turns of {config.max_new_tokens} tokens"
    return {
        "episodes": n_tasks,
        "policy": policy,
        "split": split,
        "budgets": budgets,
        "arms": arms,
        "load": os.getloadavg()[0],
        "cores": len(os.sched_getaffinity(0)),
    }


def report(results: dict) -> str:
    lines = [
        f"## One evaluation on both engines: {results['policy']}, {results['episodes']} {results['split']} tasks, "
        f"seed 0, {results['budgets']} (the ablation's at the cpu profile)",
        f"{results['cores']} cores, load average {results['load']:.1f} at the end",
        "",
        "| engine | seconds | episodes/min | tokens/episode | success | x in-process |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for a in results["arms"]:
        lines.append(
            f"| {a['arm']} | {a['seconds']:.0f} | {60 * results['episodes'] / a['seconds']:.1f} "
            f"| {a['tokens_per_episode']:.0f} | {a['success']:.2f} | {a['ratio']:.2f}x |"
        )
    lines += [
        "",
        "Times include loading the adapter and, for vLLM, pushing its merged weights to the server.",
        "command: python -m bench evaluation",
    ]
    return "\n".join(lines)
