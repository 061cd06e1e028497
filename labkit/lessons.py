"""What the lesson notebooks show, computed here so it is tested like the rest of labkit."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from labkit.data import token_lengths, trajectory_row
from labkit.env import Observation, ToolCall, ToolEnv, call_once, run_episode
from labkit.evaluate import IN_PROCESS_BATCH, EvalConfig, evaluate
from labkit.evolve import LEVEL_DESCRIPTIONS, evolve_toolset
from labkit.tasks import Task, example_arguments, generate_tasks
from labkit.teach import TEACHER_ENV
from labkit.teachers import GoldenTeacher, TrialTeacher
from labkit.tools.registry import Catalog
from labkit.toolset import Change, base_toolset

if TYPE_CHECKING:  # torch stays out of `import labkit.lessons`
    from labkit.rewards import RewardConfig


@dataclass(frozen=True)
class Stage:
    notebook: str
    summary: str
    command: str
    ready: bool = False


COURSE = [
    Stage("00_welcome.py", "the idea, the path, your hardware", "labkit doctor", ready=True),
    Stage(
        "01_tool_world.py",
        "browse, call and evolve tools; sample tasks",
        "labkit tools list / tools evolve / tasks generate",
        ready=True,
    ),
    Stage("02_teacher_trajectories.py", "golden vs trial-and-execution trajectories", "labkit teach", ready=True),
    Stage("03_sft.py", "supervised fine-tuning on each kind of trajectory", "labkit sft / labkit ablation", ready=True),
    Stage(
        "04_rl_grpo.py",
        "GRPO in the live tool environment: rewards, advantages, collapse modes, a short run",
        "labkit rl",
        ready=True,
    ),
    Stage("05_evaluation.py", "metrics, baselines, robustness curve, failure taxonomy", "labkit eval", ready=True),
]


def grade_prediction(choice: str | None, correct: str, explanation: str) -> str:
    """Feedback for a "predict, then run" question, in Markdown."""
    if choice is None:
        return "*Make your prediction above, then read on.*"
    verdict = "**Right.**" if choice == correct else f"**Not quite:** the answer is *{correct}*."
    return f"{verdict} {explanation}"


def tool_rows(catalog: Catalog) -> list[dict]:
    """One row per tool for a browsable table."""
    unseen = set(catalog.unseen_families)
    return [
        {
            "tool": tool.name,
            "family": tool.family,
            "split": "unseen" if tool.family in unseen else "seen",
            "parameters": ", ".join(tool.parameters.get("properties", {})),
            "summary": tool.description.split("\n")[0],
        }
        for tool in catalog.tools.values()
    ]


@dataclass
class EvolutionDemo:
    """One tool at one level: the docs the agent reads, the truth, and what a documented call gets back."""

    tool: str
    level: int
    seed: int
    docs: dict
    real: dict
    changes: list[Change]
    arguments: dict
    observation: Observation


def evolution_demo(
    catalog: Catalog, tool: str, level: int, seed: int, arguments: dict | None = None, call_name: str | None = None
) -> EvolutionDemo:
    """Evolve ``tool`` and call it the documented way, or as ``call_name(**arguments)`` to try a fix."""
    toolset = evolve_toolset(base_toolset(catalog, [tool]), [tool], level, seed)
    if arguments is None:
        arguments = example_arguments(catalog, tool) or {}
    live = toolset.tools[tool]
    return EvolutionDemo(
        tool=tool,
        level=level,
        seed=seed,
        docs=toolset.doc(tool),
        real=live.real_schema(),
        changes=list(toolset.changes),
        arguments=arguments,
        observation=call_once(toolset, call_name or tool, arguments),
    )


def schema_markdown(schema: dict | None) -> str:
    """A tool's schema as a short signature and one line per parameter, readable in a narrow column."""
    if schema is None:
        return "*(no documentation)*"
    function = schema["function"]
    parameters = function.get("parameters", {})
    required = set(parameters.get("required", []))
    lines = [f"**`{function['name']}`**: {function.get('description') or '*(no description)*'}", ""]
    for name, spec in parameters.get("properties", {}).items():
        kind = " | ".join(map(str, spec["enum"])) if "enum" in spec else spec.get("type", "?")
        need = "required" if name in required else "optional"
        lines.append(f"- `{name}` ({kind}, {need}): {spec.get('description') or '*(undocumented)*'}")
    return "\n".join(lines)


def observation_markdown(observation: Observation) -> str:
    """What a call returned, with errors spelled out as type and message."""
    if observation.ok:
        return (
            "```json\n"
            f"""{
                json.dumps(json.loads(observation.content), indent=1)
                if not observation.truncated
                else observation.content
            }"""
            "\n```"
        )
    error = json.loads(observation.content)["error"]
    return f"**{error['type']}**: `{error['message']}`"


def levels_table() -> str:
    return "| level | what changes |\n|:--|:--|\n" + "\n".join(
        f"| {level} | {text} |" for level, text in LEVEL_DESCRIPTIONS.items()
    )


def parse_arguments(text: str) -> dict | str:
    """Arguments typed into a text box: a dict, or a message saying what is wrong with them."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        return f'not valid JSON ({exc.msg} at column {exc.colno}); write an object like {{"city": "Paris"}}'
    return value if isinstance(value, dict) else 'write a JSON object like {"city": "Paris"}'


def documented_call_failures(catalog: Catalog, n_tasks: int, seed: int = 0) -> dict[int, float]:
    """For each level, the share of gold calls that fail when made exactly as documented."""
    env = ToolEnv(catalog)
    rates = {}
    for level in range(5):
        split = "seen" if level == 0 else "evolved"
        tasks = generate_tasks(split, n_tasks, seed, None if level == 0 else level, catalog)
        failed = total = 0
        for task in tasks:
            env.reset(task)
            for call in task.calls:
                total += 1
                failed += not env.step(ToolCall(call.name, call.arguments)).observation.ok
        rates[level] = failed / total
    env.close()
    return rates


def task_rows(tasks: list[Task]) -> list[dict]:
    """One row per task for a table."""
    return [  # short columns first: a narrow table cuts off the last ones
        {
            "id": t.id,
            "hops": t.hops,
            "level": t.level,
            "check": t.check,
            "query": t.query,
            "answer": json.dumps(t.answer, ensure_ascii=False),
            "tools": ", ".join(t.tools),
        }
        for t in tasks
    ]


# Options for "what share?" predictions: every share from 0 to 1 is within 0.15 of one of them.
SHARE_LABELS = {
    "almost none": 0.05,
    "about a third": 1 / 3,
    "about half": 0.5,
    "about two thirds": 2 / 3,
    "almost all": 0.95,
}


def closest_label(value: float, labels: dict[str, float]) -> str:
    """The label whose value is nearest ``value``: grades a prediction against a measured figure."""
    return min(labels, key=lambda label: abs(labels[label] - value))


def task_summary(tasks: list[Task]) -> dict[str, Counter]:
    """Counts by family, hops, level and check kind, for the task-sampling plots."""
    return {
        "family": Counter(f for t in tasks for f in t.families),
        "hops": Counter(t.hops for t in tasks),
        "level": Counter(t.level for t in tasks),
        "check": Counter(t.check for t in tasks),
    }


# ----------------------------------------------------------------------------- notebook 02: teacher trajectories


def teacher_pair(catalog: Catalog, task: Task, seed: int = 0) -> dict[str, dict]:
    """The golden and the trial teacher on the same task, tools changed as the task says, as trace rows."""
    env = ToolEnv(catalog, TEACHER_ENV)
    pair = {
        name: trajectory_row(run_episode(env, teacher, task), teacher.name)
        for name, teacher in (("golden", GoldenTeacher()), ("trial", TrialTeacher(seed=seed)))
    }
    env.close()
    return pair


def teacher_success(catalog: Catalog, teacher: str, split: str, level: int | None, n: int, seed: int = 0) -> float:
    """Share of tasks a scripted teacher solves, on tools changed as each task says."""
    policy = GoldenTeacher() if teacher == "golden" else TrialTeacher(seed=seed)
    env = ToolEnv(catalog, TEACHER_ENV)
    tasks = generate_tasks(split, n, seed, level, catalog)
    rate = sum(run_episode(env, policy, task).success for task in tasks) / len(tasks)
    env.close()
    return rate


def teacher_choice_note(teacher: str, split: str) -> str:
    """What a teacher/split choice really makes, where it is not what it looks like; '' otherwise."""
    if teacher == "golden" and split == "evolved":
        return (
            "The golden teacher works on **documented tools only** (it is the trajectory-centric baseline, which never "
            "meets a changed tool), so these evolved tasks were made at **level 0**: the card's levels say so. "
            "Pick the trial teacher to see trajectories on changed tools."
        )
    return ""


def dataset_stats(rows: list[dict], tokenizer=None) -> dict[str, list]:
    """Per-episode numbers of a trajectory dataset, for histograms."""
    stats = {
        "trials per episode": [r["n_trials"] for r in rows],
        "tool calls per episode": [r["n_calls"] for r in rows],
    }
    if tokenizer is not None:
        stats["tokens per trajectory"] = token_lengths(rows, tokenizer)
    return stats


# ----------------------------------------------------------------------------- notebook 05: evaluation


METRIC_MEANINGS = {
    "success": "share of episodes whose final answer passes the task's checker",
    "valid_call_rate": (
        "share of the calls made to do the task (not trials) that were "
        "well-formed for the tool as it really is (right name, parameters, types)"
    ),
    "trials_per_episode": "turns the agent itself labelled <trial>",
    "trial_then_use_rate": (
        "of episodes with a trial, the share that then used a trialled tool successfully in execution"
    ),
    "error_recovery_rate": "of failed calls outside trials, the share put right later by a successful call",
    "calls_per_episode": "tool calls per episode",
    "tokens_per_episode": "tokens the agent generated per episode",
}


def slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")


# Notebook evaluations have one size per profile and one cache folder per profile, policy and split, shared by
# notebooks 03 and 05, so nothing is evaluated twice. Their turn budget is the ablation report's, so the numbers
# sit beside it. At the cpu profile a model policy's split takes a few minutes (8 tasks of up to 8 turns).
LESSON_EVAL_TASKS = {"tiny": 2, "cpu": 8, "gpu": 32, "multi-gpu": 64}
EVAL_CACHE = "runs/eval-cache"
SCRIPTED_POLICIES = ("teacher:", "random")  # policies that need no model: they evaluate in moments


def is_model_policy(policy: str) -> bool:
    return not policy.startswith(SCRIPTED_POLICIES)


def policy_key(policy: str) -> str:
    """A policy's name as a folder name: a run or adapter folder
    by its path from here, so the same folder keeps its cache."""
    import os
    from pathlib import Path

    folder = Path(policy)
    if folder.is_dir():
        relative = os.path.relpath(folder.resolve())
        policy = relative if not relative.startswith("..") else str(folder.resolve())
    return slug(policy)


def lesson_eval_config(policy: str, split: str, profile: str, cache_root: str = EVAL_CACHE) -> EvalConfig:
    """The evaluation notebooks 03 and 05 run for ``policy`` on
    ``split``: the profile's lesson size, cached per policy."""
    from labkit.ablation import SIZES as ABLATION_SIZES
    from labkit.profiles import get_profile

    name = get_profile(profile).name
    return EvalConfig(
        policy=policy, split=split, n=LESSON_EVAL_TASKS[name], seeds=1, profile=name,
        max_turns=ABLATION_SIZES[name].max_turns, out=f"{cache_root}/{name}/{policy_key(policy)}/{split}",
    )  # fmt: skip


def cached_result(config: EvalConfig) -> dict | None:
    """A finished evaluation's metrics from its folder, without running anything; None when it is missing or partial."""
    from pathlib import Path

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
    from labkit.evaluate import format_metric

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
    from labkit.data import read_rows

    return [
        row
        for split in splits
        for row in read_rows(f"{lesson_eval_config(policy, split, profile, cache_root).out}/episodes.jsonl")
    ]


SFT_ARMS = ("sft-golden", "sft-trial")


def sft_configs(profile: str, data_dir, out_root: str = "runs/notebook-sft") -> dict:
    """Notebook 03's two runs, ``{arm: SFTRunConfig}``, at the profile's size; the folders notebook 05 looks in."""
    from pathlib import Path

    from labkit.profiles import get_profile
    from labkit.sft import SFTRunConfig

    name = get_profile(profile).name
    return {
        arm: SFTRunConfig(
            data=str(Path(data_dir) / "trajectories" / f"{arm[4:]}-train"), profile=name, out=f"{out_root}/{name}/{arm}"
        )
        for arm in SFT_ARMS
    }


def sft_training_tokens(config) -> int:
    """Tokens an SFT run trains on: its budget, or every row of its dataset that fits, times its epochs."""
    if config.token_budget is not None:
        return int(config.token_budget * config.epochs)
    from labkit.data import load_dataset_dir
    from labkit.models import load_tokenizer

    lengths = token_lengths(list(load_dataset_dir(config.data)), load_tokenizer(config.policy))
    return int(sum(n for n in lengths if n <= config.max_length) * config.epochs)


def eval_batch(profile: str) -> int:
    """Episodes a lesson evaluation plays together: one split's tasks, up to the evaluation's batch size."""
    from labkit.profiles import get_profile

    return min(LESSON_EVAL_TASKS[get_profile(profile).name], IN_PROCESS_BATCH)


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


def recovery_note(results: dict) -> str:
    """Error recovery explained from ``{(arm, split): metrics}``: each arm's rate and its commonest failure, in words.

    Rates pool the splits, weighted by episodes; an arm that made no failed call has nothing to recover from.
    """
    arms: dict[str, dict] = {}
    for (arm, _split), metrics in results.items():
        entry = arms.setdefault(arm, {"weighted": 0.0, "n": 0, "failures": Counter()})
        rate = metrics.get("error_recovery_rate")
        if rate == rate and rate is not None:  # nan: no failed calls in this split
            entry["weighted"] += rate * metrics["n"]
            entry["n"] += metrics["n"]
        entry["failures"].update(metrics.get("failures", {}))
    parts, low = [], []
    for arm, entry in arms.items():
        if not entry["n"]:
            parts.append(f"{arm} n/a (no failed calls)")
            continue
        rate = entry["weighted"] / entry["n"]
        common = entry["failures"].most_common(1)
        parts.append(f"{arm} {rate:.2f}" + (f" (commonest failure: `{common[0][0]}`)" if common else ""))
        low.append(rate < 0.1)
    if not parts:
        return ""
    text = (
        "**Error recovery** (share of failed calls outside trials put right by a later successful one): "
        + "; ".join(parts)
        + ". "
    )
    if low and all(low):
        text += (
            "Near zero means the models rarely fix a call after an "
            "error. A model fine-tuned on trial trajectories writes "
            "`<trial>` turns, the *form* of the teacher's habit, but "
            "reading an error and changing the call is a skill a few "
            "minutes of SFT on a 135M model has not yet picked up: it tends to send the failing call again "
            "(`repeated_failing_call`) or answer anyway (`ignored_error`). Open such an episode in the trace viewer "
            "(`labkit view runs/eval-cache`) and compare it with the teacher's in notebook 02."
        )
    else:
        text += (
            "Where it is well above zero, the model read the error and changed "
            "its call: open such an episode in `labkit view runs/eval-cache`."
        )
    return text


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


# ----------------------------------------------------------------------------- notebook 03: SFT

SHIPPED_ADAPTERS = "data/adapters"  # the ablation's trained adapters, for machines too slow to train in class


def live_loss(show: Callable[[list, dict], None]) -> tuple[list, Callable[[dict], None]]:
    """A ``train_sft(on_log=...)`` callback that collects
    ``[step, loss]`` points and calls ``show(points, logs)`` on each."""
    points: list = []

    def on_log(logs: dict) -> None:
        if "loss" in logs:
            points.append([logs["step"], logs["loss"]])
            show(points, logs)

    return points, on_log


def shipped_adapter(name: str, root: str | None = None) -> str | None:
    """The folder of a shipped adapter (``sft-golden``, ``sft-trial``), or None when it is not there."""
    from pathlib import Path

    folder = Path(root or SHIPPED_ADAPTERS) / name
    return str(folder) if (folder / "adapter_config.json").is_file() else None


def report_parts(report) -> tuple[str, list]:
    """A Markdown report's text after its title, without image lines, and the image files it shows."""
    from pathlib import Path

    report = Path(report)
    if not report.is_file():
        return "", []
    lines = report.read_text(encoding="utf-8").splitlines()[1:]
    images = [report.parent / line.split("](", 1)[1].rstrip(")") for line in lines if line.startswith("![")]
    return "\n".join(line for line in lines if not line.startswith("![")), [p for p in images if p.is_file()]


def first_table(markdown: str) -> str:
    """The first Markdown table in a text (a report's headline result), or ''."""
    table = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    return "\n".join(table)


# ----------------------------------------------------------------------------- notebook 04: GRPO

REWARD_MEANINGS = {
    "outcome": "1 when the answer checks out, else 0: the one that matters",
    "format": (
        "share of turns written in the lab's format (a phase tag, one call or an answer, valid JSON, finished in time)"
    ),
    "exec_errors": (
        "minus the share of execution-phase calls that failed (failed trials are free: that is how a trial learns)"
    ),
    "budget": "minus the share of the turn budget used; -1 for running out of it",
    "trial_info": "1 when a trial met a tool the environment had changed and a call to execute then succeeded",
    "recovery": "minus the share of failed calls (outside trials) never put right",
    "guards": (
        "minus the penalties for gaming the others: no tool call at all, trials past the limit, a failing call repeated"
    ),
}

# The notebook's short run, per profile: a few steps over the profile's
# RL size (cpu: 2 tasks x 4 episodes a step, about 8 minutes;
# the shipped run's steps of 16 episodes took a median of 234 s on 2 cores, about half generating and half training).
NOTEBOOK_RL = {
    "tiny": {"steps": 2},
    "cpu": {"steps": 4, "prompts_per_step": 2},
    "gpu": {"steps": 40},
    "multi-gpu": {"steps": 40},
}
SHIPPED_RL = "sft-trial-grpo"  # the GRPO run shipped in data/adapters/, for machines too slow to train in class
COLLAPSE_MAX_TURNS = (
    6  # the turn budget tests/test_rewards.py checks the hackers at: room for the trial farmer to pass max_trials
)


def rl_init(profile: str, adapters_root: str | None = None) -> tuple[str, str]:
    """The policy GRPO starts from at this profile, and a sentence saying which.

    At the cpu size that is the shipped SFT-trial adapter (found under ``adapters_root``, so it
    works from any folder); without it, the base model (the GRPO-only arm).
    """
    from labkit.profiles import get_profile
    from labkit.rl import SHIPPED_INIT, SIZES

    profile_ = get_profile(profile)
    init = SIZES[profile_.name].init
    if init != SHIPPED_INIT:
        return init, f"GRPO starts from `{init}`, the {profile_.name} profile's model."
    folder = shipped_adapter("sft-trial", adapters_root)
    if folder is not None:
        return folder, "GRPO starts from the shipped SFT-trial adapter (notebook 03): SFT first, then RL."
    return profile_.model, (
        f"The shipped SFT-trial adapter is not in `{adapters_root or SHIPPED_ADAPTERS}/sft-trial`, "
        f"so GRPO starts from the base model `{profile_.model}` (the GRPO-only arm). "
        "Run `labkit ablation --profile cpu --ship data/adapters` to make it."
    )


@dataclass
class Group:
    """One GRPO group: one task played several times by one policy, the way training plays it."""

    task: Task
    rows: list[dict]  # trace rows (labkit.data.trajectory_row), one per episode
    problems: list[list[list[str]]]  # per episode, per turn: the format slips the rollout engine saw
    max_turns: int
    logged: list[dict] | None = None  # per episode, the unweighted components a training run logged (a shipped group)


def logged_playground_group(folder, tasks: list[Task], group: int = 0) -> Group | None:
    """A group from a GRPO run's rollout log (the last step's), for the playground before any model has played.

    The run logged each episode's unweighted reward components, so reweighting them gives what the trainer would
    have scored under other weights. ``tasks`` are the run's training tasks. None when the run has no rollout log.
    """
    from labkit.rl import read_rollout_log
    from labkit.sft import read_run_card

    rows = read_rollout_log(folder) if folder else []
    if not rows:
        return None
    last = max(r["step"] for r in rows)
    episodes = [r for r in rows if r["step"] == last and r["group"] == group]
    card = read_run_card(folder) or {}
    task = next(t for t in tasks if t.id == episodes[0]["task_id"])
    max_turns = card.get("config", {}).get("max_turns", 8)
    return Group(task, episodes, [[] for _ in episodes], max_turns, logged=[r["rewards"] for r in episodes])


def group_size(profile: str) -> int:
    """Episodes per group in the profile's GRPO runs: what the playground plays at first."""
    from labkit.profiles import get_profile
    from labkit.rl import SIZES

    return SIZES[get_profile(profile).name].num_generations


def task_options(tasks: list[Task], n: int = 12) -> dict[str, int]:
    """``{label: index}`` for a dropdown of the first ``n`` tasks; the label says whether the tools changed."""
    return {f"{t.query[:70]} (level {t.level})": i for i, t in enumerate(tasks[:n])}


def play_group(loaded, task: Task, n: int, profile: str, seed: int = 0, catalog: Catalog | None = None) -> Group:
    """Play ``task`` ``n`` times with a model through the rollout engine, with the RL size's budgets and temperature."""
    from labkit.env import EnvConfig
    from labkit.profiles import get_profile
    from labkit.rl import SIZES
    from labkit.rollout import GenerationConfig, rollout_batch

    size = SIZES[get_profile(profile).name]
    gen = GenerationConfig(
        max_new_tokens=size.max_new_tokens,
        temperature=size.temperature,
        batch_size=n,
        max_length=size.max_length,
        seed=seed,
    )
    rollouts = rollout_batch(
        loaded.model, loaded.tokenizer, [task] * n, catalog, EnvConfig(max_turns=size.max_turns), gen, progress=False
    )
    return Group(
        task,
        [trajectory_row(r.trajectory, loaded.name) for r in rollouts],
        [r.problems for r in rollouts],
        size.max_turns,
    )


def reward_config(weights: dict[str, float], switches: dict[str, bool] | None = None, **guard_settings) -> RewardConfig:
    """The reward the playground's widgets describe: a component switched off weighs 0."""
    from labkit.rewards import RewardConfig

    switches = switches or {}
    return RewardConfig.from_dict(
        {name: (weight if switches.get(name, True) else 0.0) for name, weight in weights.items()} | guard_settings
    )


def _round(value: float) -> float:
    return round(value, 3) + 0.0  # + 0.0 turns -0.0 into 0.0


def _steps_text(row: dict) -> str:
    return " → ".join(f"{p} ✗" if e else p for p, e in zip(row["phases"], row["errors"])) or "(nothing)"


def score_group(group: Group, config: RewardConfig) -> list[dict]:
    """One row per episode: what it did, each component's weighted share of the reward, the reward, and its advantage.

    The weighted shares add up to the reward; the advantages are GRPO's: the group's rewards centred and scaled.
    """
    from labkit.rewards import COMPONENTS, EpisodeReward, group_advantages, score_episode

    if group.logged is not None:
        weights = config.weights()
        scores = [
            EpisodeReward(sum(weights[n] * v for n, v in parts.items()), parts, row["guards"])
            for row, parts in zip(group.rows, group.logged)
        ]
    else:
        scores = [
            score_episode(row, config, group.max_turns, problems) for row, problems in zip(group.rows, group.problems)
        ]
    advantages = group_advantages([s.total for s in scores])
    weights = config.weights()
    return [
        {
            "episode": i + 1,
            "turns": _steps_text(row),
            "answer": row["answer"][:40],
            "solved": bool(row["success"]),
            **{name: _round(weights[name] * score.components[name]) for name in COMPONENTS},
            "reward": _round(score.total),
            "advantage": _round(float(advantage)),
            "guards fired": ", ".join(f"{g} ×{n}" for g, n in score.guards.items() if n) or "-",
        }
        for i, (row, score, advantage) in enumerate(zip(group.rows, scores, advantages))
    ]


def scaled_weights_check(group: Group, config: RewardConfig, factor: float = 2.0) -> tuple[list[float], list[float]]:
    """The group's advantages under ``config`` and under every weight times ``factor``: GRPO's scaling cancels it."""
    from dataclasses import replace

    from labkit.rewards import COMPONENTS

    scaled = replace(config, **{name: getattr(config, name) * factor for name in COMPONENTS})
    return [r["advantage"] for r in score_group(group, config)], [r["advantage"] for r in score_group(group, scaled)]


def group_chart(table: list[dict]):
    """Left: each episode's reward as stacked weighted components, the total as a dot. Right: its advantage."""
    from matplotlib.figure import Figure

    from labkit.rewards import COMPONENTS

    colours = dict(zip(COMPONENTS, ("#16a34a", "#3b82f6", "#dc2626", "#f59e0b", "#7c3aed", "#0891b2", "#6b7280")))
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    rewards_ax, advantages_ax = fig.subplots(1, 2)
    episodes = [str(r["episode"]) for r in table]
    up, down = [0.0] * len(table), [0.0] * len(table)
    for name in COMPONENTS:
        values = [r[name] for r in table]
        bottoms = [u if v >= 0 else d for v, u, d in zip(values, up, down)]
        rewards_ax.bar(episodes, values, bottom=bottoms, color=colours[name], label=name)
        up = [u + max(v, 0) for u, v in zip(up, values)]
        down = [d + min(v, 0) for d, v in zip(down, values)]
    rewards_ax.plot(episodes, [r["reward"] for r in table], "ko", label="reward")
    rewards_ax.axhline(0, color="black", linewidth=0.5)
    rewards_ax.set(title="reward = sum of weighted components", xlabel="episode")
    rewards_ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    advantages = [r["advantage"] for r in table]
    advantages_ax.bar(episodes, advantages, color=["#16a34a" if a > 0 else "#dc2626" for a in advantages])
    advantages_ax.axhline(0, color="black", linewidth=0.5)
    advantages_ax.set(title="advantage (pushed up if > 0, down if < 0)", xlabel="episode")
    return fig


# The collapse modes: crafted policies that game the reward, next to the two honest teachers.


def collapse_policies() -> dict[str, object]:
    from labkit.policies import GuessingPolicy, RepeatingFailurePolicy, TrialFarmingPolicy

    return {
        "trial teacher": TrialTeacher(),
        "golden teacher": GoldenTeacher(),
        "guesser": GuessingPolicy(),
        "trial farmer": TrialFarmingPolicy(),
        "repeater": RepeatingFailurePolicy(),
    }


def collapse_episodes(
    catalog: Catalog, tasks: list[Task], max_turns: int = COLLAPSE_MAX_TURNS
) -> dict[str, list[dict]]:
    """Every policy of :func:`collapse_policies` on every task, in the real environment: ``{policy: trace rows}``."""
    from labkit.env import EnvConfig

    env = ToolEnv(catalog, EnvConfig(max_turns=max_turns))
    try:
        return {
            name: [trajectory_row(run_episode(env, policy, task), name) for task in tasks]
            for name, policy in collapse_policies().items()
        }
    finally:
        env.close()


def collapse_table(
    episodes: dict[str, list[dict]], config: RewardConfig, max_turns: int = COLLAPSE_MAX_TURNS
) -> list[dict]:
    """Mean reward of each policy under ``config`` with its guards off and on, next to its success rate."""
    from dataclasses import replace

    from labkit.rewards import score_episode

    settings = {"off": replace(config, guards=0.0), "on": replace(config, guards=config.guards or 1.0)}
    table = []
    for name, rows in episodes.items():
        entry = {"policy": name, "success": _round(sum(r["success"] for r in rows) / len(rows))}
        for guards, setting in settings.items():
            entry[f"reward, guards {guards}"] = _round(
                sum(score_episode(r, setting, max_turns).total for r in rows) / len(rows)
            )
        table.append(entry)
    return table


def best_cheat(table: list[dict], guards: str = "off") -> str:
    """``"guesser"`` when answering at once outscores the honest golden teacher, else ``"golden teacher"``."""
    reward = {r["policy"]: r[f"reward, guards {guards}"] for r in table}
    return "guesser" if reward["guesser"] > reward["golden teacher"] else "golden teacher"


def collapse_chart(table: list[dict]):
    """Mean reward per policy, guards off beside guards on."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.subplots()
    x = range(len(table))
    for offset, (guards, colour) in zip((-0.2, 0.2), (("off", "#f59e0b"), ("on", "#3b82f6"))):
        values = [r[f"reward, guards {guards}"] for r in table]
        bars = ax.bar([i + offset for i in x], values, width=0.4, color=colour, label=f"guards {guards}")
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7)
    ax.set_xticks(list(x), [r["policy"] for r in table])
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylabel("mean reward per episode")
    ax.set_title("Honest agents and reward hackers on changed tools")
    ax.legend(fontsize=8)
    return fig


# A short GRPO run, with live curves.


def notebook_rl_config(profile: str, data_dir, out_root: str = "runs/notebook-rl"):
    """The notebook's short GRPO run: the profile's RL size, a few steps, from :func:`rl_init`'s policy."""
    from pathlib import Path

    from labkit.profiles import get_profile
    from labkit.rl import RLRunConfig

    name = get_profile(profile).name
    data_dir = Path(data_dir)
    init, _ = rl_init(name, str(data_dir / "adapters"))
    return RLRunConfig(
        init=init,
        profile=name,
        out=f"{out_root}/{name}/{SHIPPED_RL}",
        tasks=str(data_dir / "tasks" / "train.jsonl"),
        **NOTEBOOK_RL[name],
    )


def shipped_rl_status(profile: str, root: str | None = None) -> tuple[str | None, str]:
    """The shipped GRPO run's folder (None when it is missing), and a sentence saying what it is.

    Its curves, card and logged groups are results to read at any profile; it was trained at the cpu profile.
    """
    from labkit.profiles import get_profile

    where = f"{root or SHIPPED_ADAPTERS}/{SHIPPED_RL}"
    folder = shipped_adapter(SHIPPED_RL, root)
    if folder is None:
        return None, (
            f"*No shipped GRPO run in `{where}` yet: press **Train** to train one. To ship one: "
            f"`labkit rl --init data/adapters/sft-trial --profile cpu --out {SHIPPED_ADAPTERS}/{SHIPPED_RL}`.*"
        )
    other = get_profile(profile).name != "cpu"
    return folder, (
        f"*The shipped GRPO run is in `{where}`{' (trained at the cpu profile, not this one)' if other else ''}: "
        "its curves show below until your own run finishes.*"
    )


def live_rl(show: Callable[[list, dict], None]) -> tuple[list, Callable[[dict], None]]:
    """A ``train_rl(on_log=...)`` callback that keeps one history
    entry per step and calls ``show(history, logs)`` on each."""
    history: list = []

    def on_log(logs: dict) -> None:
        if "reward" in logs:
            history.append({k: v for k, v in logs.items() if k != "max_steps"})
            show(history, logs)

    return history, on_log


def progress_line(logs: dict) -> str:
    """One line per GRPO step, for script mode (which shows no widgets) and above the live plot."""
    return (
        f"step {logs['step']}/{logs.get('max_steps', '?')}: reward "
        f"{logs['reward']:.3f}, success {logs.get('episode/success', 0):.2f}, "
        f"trials/episode {logs.get('episode/trials', 0):.2f}, groups "
        f"with one reward {logs.get('frac_reward_zero_std', 0):.0%}"
    )


def median_step_seconds(history: list[dict]) -> float | None:
    """A GRPO run's typical step time: the median, since one step slowed by a busy machine drags a mean far off."""
    import statistics

    times = [e["step_time"] for e in history if e.get("step_time")]
    return statistics.median(times) if times else None


def mean_turns(history: list[dict] | None) -> float | None:
    """Turns per episode over a GRPO run (what an estimate of the next run's generation can expect)."""
    turns = [e["episode/turns"] for e in history or [] if e.get("episode/turns")]
    return sum(turns) / len(turns) if turns else None


def success_curve_note(folder) -> str:
    """Why a short GRPO run's success curve jumps about, computed
    from its card: each point is a handful of new episodes.

    Compares the first and last steps' success with the 95% interval a share of one step's episodes has.
    """
    import math

    from labkit.sft import read_run_card

    card = read_run_card(folder) if folder else None
    if not card or not card.get("history"):
        return ""
    history, episodes_per_step = card["history"], card["episodes_per_step"]
    successes = [e.get("episode/success", 0.0) for e in history]
    if len(successes) < 2:
        return ""
    first, last, mean = successes[0], successes[-1], sum(successes) / len(successes)
    half_width = 1.96 * math.sqrt(max(mean * (1 - mean), 1 / episodes_per_step) / episodes_per_step)
    moved = "fell" if last < first else "rose" if last > first else "stayed"
    verdict = (
        "well inside that noise: the curve says little about whether GRPO helped or hurt"
        if abs(last - first) <= 2 * half_width
        else "more than that noise: the run really changed"
    )
    return (
        f"Success {moved} from {first:.2f} at step 1 to {last:.2f} "
        f"at step {len(successes)}. Each point is the share of just "
        f"{episodes_per_step} episodes, on tasks drawn anew each step, so with a mean success of {mean:.2f} one point "
        f"carries a 95% interval of about ±{half_width:.2f}. A gap of {abs(last - first):.2f} is {verdict}. "
        "Read the reward and its components, and the held-out "
        "evaluation in notebook 05, rather than one step's success."
    )


def run_history(folder) -> list[dict] | None:
    """A finished GRPO run's per-step history from its
    ``run_card.json``, or None when the card or its history is missing."""
    from labkit.sft import read_run_card

    card = read_run_card(folder) if folder else None
    if card is None:
        return None
    return card.get("history") or None


def history_table(history: list[dict]) -> list[dict]:
    """One row per step: the reward, its components' means, success, trials, tool-call rate, guards fired, KL."""
    from labkit.rewards import COMPONENTS, GUARDS

    table = []
    for entry in history:
        row = {"step": entry["step"], "reward": entry.get("reward")}
        row |= {name: entry.get(f"rewards/{name}/mean") for name in COMPONENTS}
        row |= {
            "success": entry.get("episode/success"),
            "trials": entry.get("episode/trials"),
            "tool calls/turn": entry.get("episode/tool_call_rate"),
        }
        row |= {f"guard {g}": entry.get(f"guards/{g}") for g in GUARDS}
        row |= {"KL": entry.get("kl"), "groups with one reward": entry.get("frac_reward_zero_std")}
        table.append({k: _round(v) if isinstance(v, float) else v for k, v in row.items()})
    return table


def zero_spread_share(history: list[dict]) -> float:
    """Share of the run's groups whose episodes all got the same reward: GRPO learns nothing from those."""
    values = [e["frac_reward_zero_std"] for e in history if e.get("frac_reward_zero_std") is not None]
    return sum(values) / len(values) if values else 0.0


def logged_group(folder) -> list[dict]:
    """The last step's first group from a run's rollout log, as the
    trainer scored it: weighted components, reward, TRL's advantage."""
    from labkit.rewards import COMPONENTS, RewardConfig
    from labkit.rl import read_rollout_log
    from labkit.sft import read_run_card

    rows = read_rollout_log(folder) if folder else []
    if not rows:
        return []
    card = read_run_card(folder)
    weights = (RewardConfig.from_dict(card["config"]["rewards"]) if card else RewardConfig()).weights()
    last = max(r["step"] for r in rows)
    group = [r for r in rows if r["step"] == last and r["group"] == 0]
    return [
        {
            "episode": i + 1,
            "step": r["step"],
            "turns": _steps_text(r),
            "solved": bool(r["success"]),
            **{name: _round(weights[name] * r["rewards"][name]) for name in COMPONENTS},
            "reward": _round(r["reward"]),
            "advantage": _round(r["advantage"]),
        }
        for i, r in enumerate(group)
    ]


# ----------------------------------------------------------------------------- notebook 05: evaluation

TRAINED_SOURCES = ("yours (notebooks 03 and 04)", "shipped (data/adapters)")  # notebook 05 starts on the shipped ones


def trained_policies(profile: str, source: str, adapters_root: str | None = None) -> dict[str, str]:
    """The trained policies to compare, ``{arm: folder}``: the runs
    of notebooks 03-04, or the shipped ones; only those present.

    The shipped adapters were trained at the cpu profile, so other profiles get none of them.
    """
    from pathlib import Path

    from labkit.profiles import get_profile

    name = get_profile(profile).name
    if source == TRAINED_SOURCES[1]:
        if name != "cpu":
            return {}
        folders = {
            arm: f"{adapters_root or SHIPPED_ADAPTERS}/{arm}"
            for arm in ("sft-golden", "sft-recover", "sft-trial", SHIPPED_RL)
        }
    else:
        folders = {arm: f"runs/notebook-sft/{name}/{arm}" for arm in ("sft-golden", "sft-trial")}
        folders[SHIPPED_RL] = f"runs/notebook-rl/{name}/{SHIPPED_RL}"
    return {arm: folder for arm, folder in folders.items() if (Path(folder) / "adapter_config.json").is_file()}


TRAINED_LABELS = {
    "sft-golden": "SFT-golden",
    "sft-recover": "SFT-recover",
    "sft-trial": "SFT-trial",
    SHIPPED_RL: "SFT-trial + GRPO",
}
SAME_WITHIN = 0.05  # success gaps smaller than this, on a few dozen episodes, grade as "about the same"


def best_trained(pooled: dict[str, float]) -> str:
    """The prediction option a ``{arm: success}`` result answers:
    the best trained arm, or "about the same" when it barely leads."""
    ranked = sorted(((v, a) for a, v in pooled.items() if a in TRAINED_LABELS), reverse=True)
    if not ranked:
        return "none of them"
    if len(ranked) > 1 and ranked[0][0] - ranked[1][0] < SAME_WITHIN:
        return "about the same"
    return TRAINED_LABELS[ranked[0][1]]


def ablation_success(report) -> dict[str, float]:
    """``{arm: success on evolved + unseen}`` from the ablation
    report's headline table (the shipped numbers); {} without it."""
    text, _ = report_parts(report)
    table = [line.strip("|").split("|") for line in first_table(text).splitlines()]
    if len(table) < 3:
        return {}
    column = [cell.strip() for cell in table[0]].index("evolved + unseen")
    return {row[0].strip(): float(row[column].split()[0]) for row in table[2:]}


def pooled_success(results: dict, splits: list[str]) -> dict[str, float]:
    """``{policy: success}`` over the episodes of ``splits`` together, from ``{(policy, split): metrics}``."""
    totals: dict[str, list[float]] = {}
    for (policy, split), metrics in results.items():
        if split in splits:
            won, n = totals.setdefault(policy, [0.0, 0])
            totals[policy] = [won + metrics["success"] * metrics["n"], n + metrics["n"]]
    return {policy: won / n if n else 0.0 for policy, (won, n) in totals.items()}
