"""One evaluation, as the ablation and ``make demo`` run it, on both rollout engines.

The shipped SFT-trial adapter plays the same evolved tasks (seed 0) with the cpu profile's budgets, once
through the in-process engine (the baseline) and once through vLLM's CPU build. Evaluation is most of the
ablation's and the demo's wall time, so this ratio is what the engine does for them. Each arm's time is the
whole ``evaluate`` call, loading the adapter and (for vLLM) starting the server and pushing the merged
weights included, since every evaluated policy pays those once.

Run: python -m bench evaluation   (needs `make vllm`)
"""

from __future__ import annotations

import os
import tempfile
import time

from labkit.engine import vllm_missing_reason
from labkit.evaluate import EvalConfig, evaluate

ENGINES = ("transformers", "vllm")


def run(n_tasks: int = 50, policy: str = "data/adapters/sft-trial", split: str = "evolved") -> dict:
    missing = vllm_missing_reason()
    if missing:
        raise SystemExit(f"bench evaluation: {missing}")
    arms = []
    with tempfile.TemporaryDirectory() as tmp:
        for engine in ENGINES:
            config = EvalConfig(
                policy=policy, split=split, n=n_tasks, seeds=1, profile="cpu", out=f"{tmp}/{engine}", engine=engine
            )
            start = time.perf_counter()
            metrics = evaluate(config, progress=False)
            arms.append(
                {
                    "engine": engine,
                    "seconds": time.perf_counter() - start,
                    "success": metrics["success"],
                    "tokens_per_episode": metrics["tokens_per_episode"],
                    "batch": config.batch_size,
                }
            )
    baseline = arms[0]["seconds"]
    for arm in arms:
        arm["ratio"] = baseline / arm["seconds"]
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
        f"## One evaluation on both engines: {results['policy']}, "
        f"{results['episodes']} {results['split']} tasks, seed 0, "
        f"{results['budgets']} (the cpu profile's)",
        f"{results['cores']} cores, load average {results['load']:.1f} at the end",
        "",
        "| engine | seconds | episodes/min | tokens/episode | success | x in-process |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for a in results["arms"]:
        lines.append(
            f"| {a['engine']} | {a['seconds']:.0f} | "
            f"{60 * results['episodes'] / a['seconds']:.1f} | {a['tokens_per_episode']:.0f} "
            f"| {a['success']:.2f} | {a['ratio']:.2f}x |"
        )
    lines += [
        "",
        "Times include loading the adapter and, for vLLM, starting the server and pushing the merged weights.",
        "command: python -m bench evaluation",
    ]
    return "\n".join(lines)
