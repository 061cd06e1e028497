"""Evaluation: any policy on any split, with bootstrap confidence intervals, a failure taxonomy and a report.

    labkit eval --policy P --split S [--level L] [--tools-module M --tasks F] --n N --seeds K --out DIR

Writes into ``DIR``: ``episodes.jsonl`` (one row per finished episode; a rerun
skips what is there, so an interrupted evaluation resumes), ``traces/`` (the
same rows as an HF dataset with a card: the trace viewer's input),
``metrics.json`` and ``report.md`` with its plots.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from labkit.data import append_rows, read_rows, trajectory_row, write_dataset
from labkit.engine import ENGINE_OPTION, check_engine
from labkit.env import EnvConfig, ToolEnv, run_episode
from labkit.episode import Episode, Phase
from labkit.profiles import PROFILE_OPTION, get_profile
from labkit.runs import OUT_OPTION, claim_run_folder
from labkit.tasks import SPLITS, TASKS_FILE_OPTION, Task, generate_tasks, load_tasks
from labkit.templates import render
from labkit.tools import load_catalog
from labkit.tools.registry import TOOLS_MODULE_OPTION
from labkit.toolset import ErrorKind

# Errors that mean the call itself was malformed for the tool as it really is (not a bad value).
SCHEMA_ERRORS = {
    ErrorKind.UNKNOWN_TOOL,
    ErrorKind.MALFORMED_ARGUMENTS,
    ErrorKind.UNKNOWN_PARAMETER,
    ErrorKind.MISSING_PARAMETER,
    ErrorKind.WRONG_TYPE,
    ErrorKind.BAD_FORMAT,
}
FAILURES = (
    "budget_exhausted",
    "bad_format",
    "wrong_tool",
    "repeated_failing_call",
    "ignored_error",
    "wrong_parameter_name",
    "wrong_value_or_format",
    "tried_but_not_used",
    "never_tried",
    "wrong_answer",
)
METRICS = (
    "success",
    "valid_call_rate",
    "trials_per_episode",
    "trial_then_use_rate",
    "error_recovery_rate",
    "calls_per_episode",
    "tokens_per_episode",
)


IN_PROCESS_BATCH = 16  # episodes the in-process engine generates together: what a laptop's memory holds


@dataclass
class EvalConfig:
    policy: str = field(
        default="teacher:trial",
        metadata={
            "required": True,
            "help": (
                "teacher:trial, teacher:recover, teacher:golden, random, tiny, "
                "smollm2-135m, a hub id, a run or adapter folder, or openai:MODEL@BASE_URL"
            ),
        },
    )
    split: str = field(default="evolved", metadata={"choices": SPLITS})
    level: int | None = field(default=None, metadata={"choices": range(5)})
    n: int = field(default=50, metadata={"help": "tasks per seed"})
    seeds: int = 3
    tools_modules: list[str] = field(default_factory=list, metadata=TOOLS_MODULE_OPTION)
    tasks_file: str | None = field(default=None, metadata=TASKS_FILE_OPTION)
    out: str = field(default="runs/eval", metadata=OUT_OPTION)
    profile: str = field(default="cpu", metadata=PROFILE_OPTION)
    # None: the profile's eval size (a model that never answers costs every turn).
    max_turns: int | None = field(default=None, metadata={"help": "turns per episode (default: the profile's)"})
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "model tokens per turn (default: the profile's)"}
    )
    # Episodes generated together; None: IN_PROCESS_BATCH, or the vLLM engine's max_num_seqs.
    batch_size: int | None = field(default=None, metadata={"option": False})
    engine: str = field(default="auto", metadata=ENGINE_OPTION)

    def __post_init__(self) -> None:
        check_engine(self.engine)
        profile = get_profile(self.profile)
        self.max_turns = self.max_turns or profile.eval.max_turns
        self.max_new_tokens = self.max_new_tokens or profile.eval.max_new_tokens


# ----------------------------------------------------------------------------- what went wrong


def classify_failure(row: dict) -> str | None:
    """The first matching cause of a failed episode, in the order of ``FAILURES``; None for a success."""
    if row["success"]:
        return None
    episode = Episode.from_row(row)
    turns = episode.turns
    if episode.out_of_budget:
        return "budget_exhausted"
    if turns and sum(turn.phase == Phase.INVALID for turn in turns) * 2 >= len(turns):
        return "bad_format"
    decoys = {doc["function"]["name"] for doc in json.loads(row["tools"])} - set(row["gold_tools"])
    if any(turn.error == ErrorKind.UNKNOWN_TOOL for turn in turns) or any(
        turn.tool in decoys for turn in episode.executions
    ):
        return "wrong_tool"
    if episode.repeated_failures:
        return "repeated_failing_call"
    calls = [turn for turn in turns if turn.tool]
    if calls and calls[-1].error and turns[-1].phase == Phase.ANSWER:
        return "ignored_error"
    mistakes = set(episode.errors_outside_trials)
    if {ErrorKind.UNKNOWN_PARAMETER, ErrorKind.MISSING_PARAMETER} & mistakes:
        return "wrong_parameter_name"
    if {ErrorKind.INVALID_VALUE, ErrorKind.WRONG_TYPE, ErrorKind.MALFORMED_ARGUMENTS} & mistakes:
        return "wrong_value_or_format"
    if episode.trialled_tools and not episode.called_trialled_tool:
        return "tried_but_not_used"
    if row["level"] > 0 and not episode.trialled_tools:
        return "never_tried"
    return "wrong_answer"


# ----------------------------------------------------------------------------- metrics


def _episode_values(row: dict) -> dict[str, tuple[float, float]]:
    """Per-episode (numerator, denominator) pairs: ratio metrics pool over episodes, means average."""
    episode = Episode.from_row(row)
    # Calls made to do the task, and turns that failed to be one; a trial may be rejected on purpose.
    attempts = [turn.error for turn in episode.turns if turn.phase in (Phase.EXECUTION, Phase.INVALID)]
    return {
        "success": (float(episode.success), 1.0),
        "valid_call_rate": (float(sum(e not in SCHEMA_ERRORS for e in attempts)), float(len(attempts))),
        "trials_per_episode": (float(row["n_trials"]), 1.0),
        "trial_then_use_rate": (float(episode.used_trialled_tool), 1.0 if episode.trialled_tools else 0.0),
        "error_recovery_rate": (float(row["n_recoveries"]), float(row["n_errors"])),
        "calls_per_episode": (float(row["n_calls"]), 1.0),
        "tokens_per_episode": (float(row.get("n_tokens", 0)), 1.0),
    }


def _ratio(values: np.ndarray) -> float:
    total = values[:, 1].sum()
    return float(values[:, 0].sum() / total) if total else float("nan")


def bootstrap_metrics(rows: list[dict], resamples: int = 1000, seed: int = 0) -> dict:
    """Each metric with a 95% bootstrap interval over episodes (ratios are pooled, so resample episodes)."""
    if not rows:
        raise ValueError("no episodes to measure")
    values = [_episode_values(r) for r in rows]
    table = {name: np.array([v[name] for v in values]) for name in METRICS}
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(rows), size=(resamples, len(rows)))
    out: dict = {"n": len(rows)}
    for name, values in table.items():
        samples = np.array([_ratio(values[idx]) for idx in picks])
        samples = samples[~np.isnan(samples)]
        out[name] = _ratio(values)
        out[f"{name}_ci95"] = (
            [float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))] if samples.size else [None, None]
        )
    return out


def summarize(rows: list[dict]) -> dict:
    """metrics.json: the headline metrics with intervals, then success by level and seed, and failures."""
    metrics = bootstrap_metrics(rows)
    by_level = defaultdict(list)
    for row in rows:
        by_level[row["level"]].append(row)
    metrics["success_by_level"] = {}
    for level, group in sorted(by_level.items()):
        level_metrics = bootstrap_metrics(group)
        metrics["success_by_level"][str(level)] = {
            "success": level_metrics["success"],
            "ci95": level_metrics["success_ci95"],
            "n": len(group),
        }
    metrics["success_by_seed"] = {
        str(s): float(np.mean([r["success"] for r in rows if r["seed"] == s]))
        for s in sorted({r["seed"] for r in rows})
    }
    metrics["failures"] = dict(Counter(r["failure"] for r in rows if r["failure"]).most_common())
    return metrics


# ----------------------------------------------------------------------------- running


def eval_tasks(config: EvalConfig, catalog, seed: int) -> list[Task]:
    if config.tasks_file:
        return load_tasks(config.tasks_file, catalog)
    return generate_tasks(config.split, config.n, seed, config.level, catalog)


def _episodes(config: EvalConfig, policy, tasks: list[Task], catalog, env_config: EnvConfig, seed: int, bar):
    """Yield finished trajectories, advancing ``bar`` as each finishes: model policies through the batched
    rollout engine, others one by one."""
    from labkit.policies import ModelPolicy

    if isinstance(policy, ModelPolicy):
        from labkit.engine import rollout_model
        from labkit.rollout import GenerationConfig, ServedModel, rollout_batch

        model = rollout_model(policy.loaded, config.engine, config.profile)
        # A server decodes a bigger batch for the same cost per step (memory-bound); in-process, 16 fit a laptop.
        batch_size = config.batch_size or (
            model.client.config.max_num_seqs if isinstance(model, ServedModel) else IN_PROCESS_BATCH
        )
        gen = GenerationConfig(max_new_tokens=config.max_new_tokens, batch_size=batch_size, seed=seed)
        for start in range(0, len(tasks), batch_size):
            chunk = tasks[start : start + batch_size]
            for rollout in rollout_batch(model, policy.loaded.tokenizer, chunk, catalog, env_config, gen, bar=bar):
                yield rollout.trajectory
        return
    env = ToolEnv(catalog, env_config)
    for task in tasks:
        yield run_episode(env, policy, task)
        bar.update(1)
    env.close()


def evaluate(config: EvalConfig, progress: bool = True, on_episode: Callable[[dict], None] | None = None) -> dict:
    """Run (or resume) an evaluation and write its traces, metrics and report; returns the metrics.

    ``on_episode`` is called with each finished episode's row as it is written (a notebook's progress bar).
    """
    from labkit.policies import load_policy

    out = Path(config.out)
    # More tasks or seeds extend the same evaluation (tasks of a seed
    # are a prefix of a longer list), so n and seeds may change.
    same_run = {k: v for k, v in asdict(config).items() if k not in ("out", "batch_size", "n", "seeds")}
    claim_run_folder(out, same_run, eval_command(config))
    log = out / "episodes.jsonl"
    done = {(r["seed"], r["task_id"]) for r in read_rows(log, repair=True)}
    catalog = load_catalog(config.tools_modules)
    env_config = EnvConfig(max_turns=config.max_turns)
    tasks_by_seed = {seed: eval_tasks(config, catalog, seed) for seed in range(config.seeds)}
    total = sum(len(tasks) for tasks in tasks_by_seed.values())
    bar = tqdm(total=total, initial=len(done), desc=f"eval {config.policy} on {config.split}", disable=not progress)
    for seed, tasks in tasks_by_seed.items():
        todo = [t for t in tasks if (seed, t.id) not in done]
        if not todo:
            continue
        policy = load_policy(config.policy, config.profile, seed=seed)
        for trajectory in _episodes(config, policy, todo, catalog, env_config, seed, bar):
            row = trajectory_row(trajectory, config.policy)
            row.update(seed=seed, eval_split=config.split)
            row["failure"] = classify_failure(row)
            append_rows(log, [row])
            if on_episode is not None:
                on_episode(row)
    bar.close()
    rows = evaluation_rows(config, tasks_by_seed)
    metrics = {"policy": config.policy, "split": config.split, "level": config.level, **summarize(rows)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_dataset(rows, out / "traces", _traces_card(config, metrics))
    write_report(config, metrics, out)
    return metrics


def evaluation_rows(config: EvalConfig, tasks_by_seed: dict[int, list[Task]] | None = None) -> list[dict]:
    """The episodes of ``config``'s tasks and seeds from its log,
    which may hold more (a larger run into the same folder)."""
    if tasks_by_seed is None:
        catalog = load_catalog(config.tools_modules)
        tasks_by_seed = {seed: eval_tasks(config, catalog, seed) for seed in range(config.seeds)}
    wanted = {(seed, t.id) for seed, tasks in tasks_by_seed.items() for t in tasks}
    return [r for r in read_rows(Path(config.out) / "episodes.jsonl") if (r["seed"], r["task_id"]) in wanted]


# ----------------------------------------------------------------------------- the report


def format_metric(metrics: dict, name: str) -> str:
    value, (low, high) = metrics[name], metrics[f"{name}_ci95"]
    if value != value or low is None:  # nan: nothing to measure (e.g. no errors to recover from)
        return "n/a"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _traces_card(config: EvalConfig, metrics: dict) -> str:
    return render("eval_traces_card.md.jinja", config=config, metrics=metrics, command=eval_command(config))


def eval_command(config: EvalConfig) -> str:
    source = f"--tasks {config.tasks_file}" if config.tasks_file else f"--split {config.split} --n {config.n}"
    extras = "".join(f" --tools-module {m}" for m in config.tools_modules)
    extras += f" --level {config.level}" if config.level is not None else ""
    extras += f" --max-turns {config.max_turns} --max-new-tokens {config.max_new_tokens}"
    return (
        f"labkit eval --policy {config.policy} {source}{extras} --seeds "
        f"{config.seeds} --profile {config.profile} --out {config.out}"
    )


def write_report(config: EvalConfig, metrics: dict, out: Path) -> Path:
    from labkit import plots

    command = eval_command(config)
    plots.save(plots.robustness_curve({config.policy: metrics["success_by_level"]}), out / "robustness.png", command)
    plots.save(plots.failure_taxonomy({config.policy: metrics["failures"]}, FAILURES), out / "failures.png", command)
    path = out / "report.md"
    path.write_text(
        render(
            "eval_report.md.jinja",
            config=config,
            metrics=metrics,
            command=command,
            names=METRICS,
            format_metric=format_metric,
        )
    )
    return path


def sample_failures(rows: list[dict], label: str | None = None, k: int = 5, seed: int = 0) -> list[dict]:
    """A few failed episodes (of one label, if given) to read through."""
    failed = [r for r in rows if r.get("failure") and (label is None or r["failure"] == label)]
    return random.Random(seed).sample(failed, min(k, len(failed)))


# ----------------------------------------------------------------------------- several evaluations side by side


def robustness_by_policy(results: dict) -> dict[str, dict]:
    """Success by level per policy: level 0 from the seen split, levels 1-4 from the evolved split."""
    curves: dict[str, dict] = {}
    for (policy, split), metrics in results.items():
        if split == "seen":
            curves.setdefault(policy, {})["0"] = {
                "success": metrics["success"],
                "ci95": metrics["success_ci95"],
                "n": metrics["n"],
            }
        elif split == "evolved":
            curves.setdefault(policy, {}).update({k: v for k, v in metrics["success_by_level"].items() if k != "0"})
    return curves


def pooled_success(results: dict, splits: list[str]) -> dict[str, float]:
    """``{policy: success}`` over the episodes of ``splits`` together, from ``{(policy, split): metrics}``."""
    totals: dict[str, list[float]] = {}
    for (policy, split), metrics in results.items():
        if split in splits:
            won, n = totals.setdefault(policy, [0.0, 0])
            totals[policy] = [won + metrics["success"] * metrics["n"], n + metrics["n"]]
    return {policy: won / n if n else 0.0 for policy, (won, n) in totals.items()}


def recovery_by_policy(results: dict) -> dict[str, tuple[float | None, str | None]]:
    """Each policy's error-recovery rate over its splits, weighted by episodes, and its commonest failure.

    ``results`` is ``{(policy, split): metrics}``. The rate is None for a policy that made no failed call outside
    trials: it had nothing to recover from.
    """
    pooled: dict[str, dict] = {}
    for (policy, _split), metrics in results.items():
        entry = pooled.setdefault(policy, {"weighted": 0.0, "n": 0, "failures": Counter()})
        rate = metrics.get("error_recovery_rate")
        if rate == rate and rate is not None:  # nan: no failed calls in this split
            entry["weighted"] += rate * metrics["n"]
            entry["n"] += metrics["n"]
        entry["failures"].update(metrics.get("failures", {}))
    recovery = {}
    for policy, entry in pooled.items():
        commonest = entry["failures"].most_common(1)
        rate = entry["weighted"] / entry["n"] if entry["n"] else None
        recovery[policy] = (rate, commonest[0][0] if commonest else None)
    return recovery
