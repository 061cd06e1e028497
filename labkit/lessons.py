"""What the lesson notebooks show, computed here so it is tested like the rest of labkit."""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from labkit.data import token_lengths, trajectory_row
from labkit.env import Observation, ToolCall, ToolEnv, call_once, run_episode
from labkit.evaluate import EvalConfig, evaluate
from labkit.evolve import LEVEL_DESCRIPTIONS, evolve_toolset
from labkit.plots import PHASE_COLOURS
from labkit.tasks import Task, example_arguments, generate_tasks
from labkit.teach import TEACHER_ENV
from labkit.teachers import GoldenTeacher, TrialTeacher
from labkit.tools.registry import Catalog
from labkit.toolset import Change, base_toolset


@dataclass(frozen=True)
class Stage:
    notebook: str
    summary: str
    command: str
    ready: bool = False


COURSE = [
    Stage("00_welcome.py", "the idea, the path, your hardware", "labkit doctor", ready=True),
    Stage("01_tool_world.py", "browse, call and evolve tools; sample tasks", "labkit tools list / tools evolve / tasks generate", ready=True),
    Stage("02_teacher_trajectories.py", "golden vs trial-and-execution trajectories", "labkit teach", ready=True),
    Stage("03_sft.py", "supervised fine-tuning on each kind of trajectory", "labkit sft / labkit ablation", ready=True),
    Stage("04_rl_grpo.py", "GRPO in the live tool environment", "labkit rl"),
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
        return f"```json\n{json.dumps(json.loads(observation.content), indent=1) if not observation.truncated else observation.content}\n```"
    error = json.loads(observation.content)["error"]
    return f"**{error['type']}**: `{error['message']}`"


def levels_table() -> str:
    return "| level | what changes |\n|:--|:--|\n" + "\n".join(f"| {level} | {text} |" for level, text in LEVEL_DESCRIPTIONS.items())


def parse_arguments(text: str) -> dict | str:
    """Arguments typed into a text box: a dict, or a message saying what is wrong with them."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at column {exc.colno}); write an object like {{\"city\": \"Paris\"}}"
    return value if isinstance(value, dict) else "write a JSON object like {\"city\": \"Paris\"}"


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
    return [
        {
            "id": t.id,
            "query": t.query,
            "tools": ", ".join(t.tools),
            "answer": json.dumps(t.answer, ensure_ascii=False),
            "check": t.check,
            "hops": t.hops,
            "level": t.level,
        }
        for t in tasks
    ]


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


def transcript_html(row: dict) -> str:
    """A trace row (teacher data, evaluation traces) as HTML, one coloured block per turn; every string is escaped."""
    blocks = []
    phases = iter(row.get("phases", []))
    for message in row["messages"][1:]:
        role, content = message["role"], message.get("content") or ""
        if role == "assistant":
            phase = next(phases, "execution")
            colour = PHASE_COLOURS.get(phase, PHASE_COLOURS["error"])
            calls = "".join(
                f"<br><code>{html.escape(c['function']['name'])}({html.escape(str(c['function']['arguments']))})</code>"
                for c in message.get("tool_calls") or []
            )
            blocks.append(
                f'<div style="border-left:4px solid {colour};padding:2px 8px;margin:4px 0">'
                f'<span style="color:{colour};font-weight:600">{phase}</span> {html.escape(content)}{calls}</div>'
            )
        elif role == "user" and not blocks:
            blocks.append(f"<div><b>user</b>: {html.escape(content)}</div>")
        else:
            failed = '"error"' in content[:20]
            colour = PHASE_COLOURS["error"] if failed else "#6b7280"
            blocks.append(f'<div style="margin:0 0 4px 24px;color:{colour}"><code>{html.escape(content[:400])}</code></div>')
    verdict = "solved" if row["success"] else f"failed ({row.get('failure') or row['end_reason']})"
    blocks.append(f"<div><b>gold</b>: {html.escape(row['gold_answer'])}, <b>{verdict}</b></div>")
    return "\n".join(blocks)


def teacher_success(catalog: Catalog, teacher: str, split: str, level: int | None, n: int, seed: int = 0) -> float:
    """Share of tasks a scripted teacher solves, on tools changed as each task says."""
    policy = GoldenTeacher() if teacher == "golden" else TrialTeacher(seed=seed)
    env = ToolEnv(catalog, TEACHER_ENV)
    tasks = generate_tasks(split, n, seed, level, catalog)
    rate = sum(run_episode(env, policy, task).success for task in tasks) / len(tasks)
    env.close()
    return rate


def dataset_stats(rows: list[dict], tokenizer=None) -> dict[str, list]:
    """Per-episode numbers of a trajectory dataset, for histograms."""
    stats = {"trials per episode": [r["n_trials"] for r in rows], "tool calls per episode": [r["n_calls"] for r in rows]}
    if tokenizer is not None:
        stats["tokens per trajectory"] = token_lengths(rows, tokenizer)
    return stats


# ----------------------------------------------------------------------------- notebook 05: evaluation


METRIC_MEANINGS = {
    "success": "share of episodes whose final answer passes the task's checker",
    "valid_call_rate": "share of attempted calls that were well-formed for the tool as it really is (right name, parameters, types)",
    "trials_per_episode": "turns the agent itself labelled <trial>",
    "trial_then_use_rate": "of episodes with a trial, the share that then used a trialled tool successfully in execution",
    "error_recovery_rate": "of failed calls, the share followed later by a successful call",
    "calls_per_episode": "tool calls per episode",
    "tokens_per_episode": "tokens the agent generated per episode",
}


def slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")


def compare_policies(policies: list[str], splits: list[str], n: int, seeds: int, profile: str, out_root: str, progress: bool = False) -> dict:
    """``{(policy, split): metrics}``; each evaluation resumes from its own folder under ``out_root``."""
    return {
        (policy, split): evaluate(
            EvalConfig(policy=policy, split=split, n=n, seeds=seeds, profile=profile, out=f"{out_root}/{slug(policy)}-{split}"), progress
        )
        for policy in policies
        for split in splits
    }


def robustness_by_policy(results: dict) -> dict[str, dict]:
    """Success by level per policy: level 0 from the seen split, levels 1-4 from the evolved split."""
    curves: dict[str, dict] = {}
    for (policy, split), metrics in results.items():
        if split == "seen":
            curves.setdefault(policy, {})["0"] = {"success": metrics["success"], "ci95": metrics["success_ci95"], "n": metrics["n"]}
        elif split == "evolved":
            curves.setdefault(policy, {}).update({k: v for k, v in metrics["success_by_level"].items() if k != "0"})
    return curves


# ----------------------------------------------------------------------------- notebook 03: SFT

SHIPPED_ADAPTERS = "data/adapters"  # the ablation's trained adapters, for machines too slow to train in class


def label_mask_html(row: dict, tokenizer) -> str:
    """A training row token by token: green tokens carry labels (the model learns to write them), grey ones are context.

    The mask is the chat template's assistant mask, the one TRL's ``assistant_only_loss`` uses.
    """
    tools = json.loads(row["tools"]) if isinstance(row["tools"], str) else row["tools"]
    encoded = tokenizer.apply_chat_template(row["messages"], tools=tools, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    spans = []
    for token, learned in zip(encoded["input_ids"], encoded["assistant_masks"]):
        text = html.escape(tokenizer.decode([token]))
        style = "background:#dcfce7;color:#14532d" if learned else "color:#6b7280"
        spans.append(f'<span style="{style}">{text}</span>')
    learned = sum(encoded["assistant_masks"])
    header = f"<p><b>{learned}</b> of {len(encoded['input_ids'])} tokens carry labels ({learned / len(encoded['input_ids']):.0%}).</p>"
    return header + '<pre style="white-space:pre-wrap;font-size:11px;line-height:1.5">' + "".join(spans) + "</pre>"


def live_loss(show: Callable[[list, dict], None]) -> tuple[list, Callable[[dict], None]]:
    """A ``train_sft(on_log=...)`` callback that collects ``[step, loss]`` points and calls ``show(points, logs)`` on each."""
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


def paired_transcripts(results: dict, split: str, out_root: str, policies: list[str]) -> list[tuple[str, dict]]:
    """The same task as each policy played it: the first task where their outcomes differ (else the first task)."""
    from labkit.data import read_rows

    rows = {p: {r["task_id"]: r for r in read_rows(f"{out_root}/{slug(p)}-{split}/episodes.jsonl")} for p in policies}
    shared = [t for t in rows[policies[0]] if all(t in rows[p] for p in policies)]
    if not shared:
        return []
    differing = [t for t in shared if len({rows[p][t]["success"] for p in policies}) > 1]
    task = (differing or shared)[0]
    return [(p, rows[p][task]) for p in policies]


def report_parts(report) -> tuple[str, list]:
    """A Markdown report's text after its title, without image lines, and the image files it shows."""
    from pathlib import Path

    report = Path(report)
    if not report.is_file():
        return "", []
    lines = report.read_text(encoding="utf-8").splitlines()[1:]
    images = [report.parent / line.split("](", 1)[1].rstrip(")") for line in lines if line.startswith("![")]
    return "\n".join(line for line in lines if not line.startswith("![")), [p for p in images if p.is_file()]
