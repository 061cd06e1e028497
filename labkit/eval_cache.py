"""The lessons' evaluations: each policy on each split at the profile's lesson size, cached so none is played twice.

Each is an ordinary :func:`labkit.evaluate.evaluate` run into ``runs/eval-cache/PROFILE/POLICY/SPLIT``, read back
by whichever notebook (03 or 05) asks for it next.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from labkit.data import read_rows
from labkit.evaluate import IN_PROCESS_BATCH, EvalConfig, evaluate, format_metric
from labkit.policies import is_model_policy
from labkit.profiles import get_profile
from labkit.runs import slug

# Notebook evaluations have one size per profile and one cache folder per profile, policy and split, shared by
# notebooks 03 and 05, so nothing is evaluated twice. Their turn budget is the ablation report's, so the numbers
# sit beside it. At the cpu profile a model policy's split takes a few minutes (8 tasks of up to 8 turns).
EVAL_CACHE = "runs/eval-cache"


def policy_key(policy: str) -> str:
    """A policy's name as a folder name: a run or adapter folder
    by its path from here, so the same folder keeps its cache."""
    folder = Path(policy)
    if folder.is_dir():
        relative = os.path.relpath(folder.resolve())
        policy = relative if not relative.startswith("..") else str(folder.resolve())
    return slug(policy)


def lesson_eval_config(policy: str, split: str, profile: str, cache_root: str = EVAL_CACHE) -> EvalConfig:
    """The evaluation notebooks 03 and 05 run for ``policy`` on
    ``split``: the profile's lesson size, cached per policy."""
    chosen = get_profile(profile)
    name = chosen.name
    return EvalConfig(
        policy=policy, split=split, n=chosen.notebook.eval_tasks, seeds=1, profile=name,
        max_turns=chosen.ablation.max_turns, out=f"{cache_root}/{name}/{policy_key(policy)}/{split}",
    )  # fmt: skip


def eval_batch(profile: str) -> int:
    """Episodes a lesson evaluation plays together: one split's tasks, up to the evaluation's batch size."""
    return min(get_profile(profile).notebook.eval_tasks, IN_PROCESS_BATCH)


def cached_result(config: EvalConfig) -> dict | None:
    """A finished evaluation's metrics from its folder, without running anything; None when it is missing or partial."""
    metrics_file = Path(config.out) / "metrics.json"
    if not metrics_file.is_file():
        return None
    metrics = json.loads(metrics_file.read_text())
    return metrics if metrics.get("n") == config.n * config.seeds else None


def cached_results(policies: list[str], splits: list[str], profile: str, cache_root: str = EVAL_CACHE) -> dict:
    """``{(policy, split): metrics}`` for the pairs already evaluated at this profile's lesson size."""
    results = {}
    for policy in policies:
        for split in splits:
            metrics = cached_result(lesson_eval_config(policy, split, profile, cache_root))
            if metrics is not None:
                results[(policy, split)] = metrics
    return results


def pending_model_episodes(policies: list[str], splits: list[str], profile: str, cache_root: str = EVAL_CACHE) -> int:
    """Model-played episodes an evaluation of these pairs still
    has to run (cached pairs and scripted policies cost nothing)."""
    done = cached_results(policies, splits, profile, cache_root)
    return sum(
        lesson_eval_config(p, s, profile, cache_root).n
        for p in policies
        for s in splits
        if is_model_policy(p) and (p, s) not in done
    )


def compare_policies(
    policies: list[str],
    splits: list[str],
    profile: str,
    cache_root: str = EVAL_CACHE,
    on_episode: Callable[[dict], None] | None = None,
) -> dict:
    """``{(policy, split): metrics}``: each pair evaluated at the lesson size, or read back from the cache.

    ``on_episode`` gets each newly played episode's row (a progress bar). Each finished pair is also printed, because a
    notebook run as a script shows no progress bar.
    """
    results = {}
    for policy in policies:
        for split in splits:
            config = lesson_eval_config(policy, split, profile, cache_root)
            results[(policy, split)] = metrics = cached_result(config) or evaluate(
                config, progress=False, on_episode=on_episode
            )
            print(f"{policy} on {split}: success {format_metric(metrics, 'success')} over {metrics['n']} episodes")
    return results


def evaluation_rows(policy: str, splits: list[str], profile: str, cache_root: str = EVAL_CACHE) -> list[dict]:
    """Every cached episode of ``policy`` on ``splits``, for browsing failures."""
    return [
        row
        for split in splits
        for row in read_rows(f"{lesson_eval_config(policy, split, profile, cache_root).out}/episodes.jsonl")
    ]


def paired_transcripts(
    split: str, policies: list[str], profile: str, cache_root: str = EVAL_CACHE
) -> list[tuple[str, dict]]:
    """The same task as each policy played it: the first task where their outcomes differ (else the first task)."""
    rows = {p: {r["task_id"]: r for r in evaluation_rows(p, [split], profile, cache_root)} for p in policies}
    shared = [t for t in rows[policies[0]] if all(t in rows[p] for p in policies)]
    if not shared:
        return []
    differing = [t for t in shared if len({rows[p][t]["success"] for p in policies}) > 1]
    task = (differing or shared)[0]
    return [(p, rows[p][task]) for p in policies]
