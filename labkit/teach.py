"""Teacher datasets: run a teacher over tasks, verify every trajectory by replaying it, write data and a card.

    labkit teach --teacher {trial,golden,llm} --split S --n N --seed K --out DIR

Same seed, same bytes: tasks, trajectories, ``data.parquet`` and ``README.md``.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm
from transformers.utils.chat_parsing import parse_response

from labkit.data import read_rows, token_lengths, trajectory_row, write_dataset
from labkit.env import EnvConfig, ToolEnv, Trajectory, run_episode
from labkit.episode import Episode, Phase, turn_calls
from labkit.protocol import RESPONSE_TEMPLATE, message_action
from labkit.runs import OUT_OPTION, claim_run_folder, normal_path
from labkit.tasks import SPLITS, TASKS_FILE_OPTION, Task, generate_tasks, load_tasks
from labkit.teachers import GoldenTeacher, RecoverTeacher, TrialTeacher
from labkit.teachers.scripted import DEFAULT_SLIPS, PROBES, SLIPS, check_slips
from labkit.templates import render
from labkit.tools import Catalog, load_catalog
from labkit.tools.registry import TOOLS_MODULE_OPTION

TEACHERS = ("trial", "recover", "golden", "llm")
HOW_THEY_TEACH = {
    "trial": (
        "Before a tool's first real use the teacher probes it, by default "
        "with no arguments. That probe never repeats the real call, and its "
        "answer carries what the docs may have got wrong: the error lists "
        "every parameter the tool accepts now, a removed tool names "
        "its successor, a disabled look-alike refuses. The next turn's "
        "reason quotes the finding (`It accepts date, day_count: 'days' "
        "is now 'day_count'.`). Execution then slips on purpose now and "
        "then and recovers, naming the fix. A probe's error is how it "
        "learns, so it is not counted among the errors below. A slip "
        "is a turn SFT reads but never trains on: the learner should "
        "learn the recovery, not the mistake."
    ),
    "recover": (
        "The trial teacher without its trial phase: it calls each "
        "tool as documented, slips on purpose now and then, and fixes "
        "whatever fails from the error text, naming the fix (its slips, "
        "too, are context, never trained on). Against the trial data "
        'it separates "fix after failing" from "try first".'
    ),
    "golden": "The documented calls, made directly on the tools as documented: no trials, no errors.",
    "llm": "An LLM behind an OpenAI-compatible endpoint plays the agent; only verified successes are kept.",
}
QUOTING_TYPES = (
    " With `--quote-types` that reason also gives each required parameter's type from the error "
    "(`It accepts date (string), day_count (integer)`), so the call after it can match what each takes."
)
EXAMPLE_PROBES = (
    " With `--probe {probe}` the probe is the documented call with its numbers and number lists swapped for "
    "small examples (`median_of(values=[1, 2])`), so its reply shows what the tool returns and the values are "
    "there to copy; a call with nothing to swap is {fallback}."
)
LEARNER_SLIPS = (
    " With `--learner-episodes {path}` its slips are first the failed calls a trained model made on the same "
    "task in those episodes (a scalar for an array, an invented parameter or ID), so its recoveries start where "
    "that model goes wrong; where the model made none, it slips as usual."
)
FALLBACKS = {"example": "probed empty", "example-only": "not probed: its real call comes first"}
# Generous on purpose: teacher data must never be cut short by a budget.
TEACHER_ENV = EnvConfig(max_turns=40, max_calls=32, max_tokens=8192)


@dataclass
class TeachConfig:
    teacher: str = field(default="trial", metadata={"choices": TEACHERS})
    split: str = field(default="train", metadata={"choices": SPLITS})
    n: int = 200
    seed: int = 0
    level: int | None = field(default=None, metadata={"choices": range(5), "help": "fix the evolution level"})
    mistake_rate: float = field(
        default=0.3, metadata={"help": "how often the trial and recover teachers slip and recover"}
    )
    slips: tuple[str, ...] = field(
        default=DEFAULT_SLIPS,
        metadata={
            "help": "the mistakes they make, comma-separated, from: "
            + "; ".join(f"{k} ({meaning})" for k, meaning in SLIPS.items()),
            "parse": lambda text: tuple(k.strip() for k in text.split(",") if k.strip()),
        },
    )
    # After probes that named only the parameters, SFT-trial wrote a scalar for every array parameter of a new
    # tool. Quoting the error's types was tested against that and did not help (README, "Where the thesis
    # stands"); the option stays so the measurement can be reproduced.
    quote_types: bool = field(
        default=False,
        metadata={
            "help": "the trial teacher's reason after a probe quotes each required parameter's type from the "
            "error (`It accepts values (array)`), not only its name"
        },
    )
    # Probing with an empty call left an error in the prompt that broke the next call's values (README,
    # "Where the thesis stands"); an example call is the alternative being measured.
    probe: str = field(
        default="empty",
        metadata={
            "choices": PROBES,
            "help": "the trial teacher's probe: an empty call, or the documented call on small example numbers "
            "(example-only: no probe where there is no number to swap)",
        },
    )
    # SFT-trial's failed calls were ones its teacher never makes (a scalar for an array, an invented parameter),
    # so its data never showed recovering from them; this feeds them back, as DAgger does (README).
    learner_episodes: str | None = field(
        default=None,
        metadata={
            "parse": normal_path,
            "help": "episodes.jsonl of a trained model on these same tasks (`labkit eval --tasks`): the trial and "
            "recover teachers slip its failed calls first and recover from them",
        },
    )
    tools_modules: list[str] = field(default_factory=list, metadata=TOOLS_MODULE_OPTION)
    tasks_file: str | None = field(default=None, metadata=TASKS_FILE_OPTION)
    out: str = field(default="runs/teach", metadata=OUT_OPTION)
    # Caps episodes below TEACHER_ENV's generous budget (an LLM teacher can ramble).
    max_turns: int | None = field(default=None, metadata={"help": "cap each episode's turns"})

    def __post_init__(self) -> None:
        self.slips = check_slips(self.slips)

    @property
    def quotes_types(self) -> bool:
        """Only the trial teacher probes, so only its reasons can quote what a probe's error says."""
        return self.quote_types and self.teacher == "trial"

    @property
    def learns_from_learner(self) -> bool:
        return self.learner_episodes is not None and self.teacher in ("trial", "recover")

    @property
    def probes_with_examples(self) -> bool:
        return self.probe != "empty" and self.teacher == "trial"

    def command(self) -> str:
        source = (
            f"--tasks {self.tasks_file}" if self.tasks_file else f"--split {self.split} --n {self.n} --seed {self.seed}"
        )
        extras = "".join(f" --tools-module {m}" for m in self.tools_modules)
        extras += f" --level {self.level}" if self.level is not None else ""
        extras += f" --mistake-rate {self.mistake_rate}" if self.teacher in ("trial", "recover") else ""
        extras += (
            f" --slips {','.join(self.slips)}"
            if self.teacher in ("trial", "recover") and self.slips != DEFAULT_SLIPS
            else ""
        )
        extras += " --quote-types" if self.quotes_types else ""
        extras += f" --probe {self.probe}" if self.probes_with_examples else ""
        extras += f" --learner-episodes {self.learner_episodes}" if self.learns_from_learner else ""
        extras += f" --max-turns {self.max_turns}" if self.max_turns else ""
        return f"labkit teach --teacher {self.teacher} {source}{extras} --out {self.out}"


def replay(task: Task, messages: list[dict], env: ToolEnv) -> Trajectory:
    """Step a recorded transcript's actions through a fresh episode: the proof that it really works."""
    env.reset(task)
    recorded = [m for m in messages[2:] if m["role"] in ("tool", "user")]  # after the system prompt and the task
    seen = 0
    for message in messages:
        if message["role"] != "assistant":
            continue
        parsed = parse_response(message.get("content") or "", RESPONSE_TEMPLATE, prefix="")
        parsed["tool_calls"] = message.get("tool_calls")
        result = env.step(message_action(parsed).action)
        if result.observation is not None:
            if seen >= len(recorded) or recorded[seen]["content"] != result.observation.content:
                raise ValueError(f"replay of {task.id} diverged at tool result {seen}")
            seen += 1
        if result.done:
            break
    return env.trajectory


def learner_slips(path: str | Path, tasks: list[Task]) -> dict[str, list[tuple[str, dict]]]:
    """Each task's failed calls outside trials as (tool, arguments), in the order made and each once, from
    the ``episodes.jsonl`` that ``labkit eval --tasks`` wrote for a trained model on the same tasks."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"{path}: no such episodes file; write one with `labkit eval --policy RUN --tasks TASKS --split train "
            "--out DIR` on the teacher's own tasks (it writes DIR/episodes.jsonl)"
        )
    ids, slips = {task.id for task in tasks}, {}
    for number, row in enumerate(read_rows(path), 1):
        if not isinstance(row, dict) or not {"task_id", "messages", "phases", "errors"} <= set(row):
            raise ValueError(f"{path}, line {number}: not an episode row of `labkit eval` (episodes.jsonl)")
        if row["task_id"] not in ids:
            continue
        mistakes = slips.setdefault(row["task_id"], [])
        for turn in Episode.from_row(row).turns:
            if turn.phase != Phase.EXECUTION or not turn.error or not turn.tool:
                continue
            try:
                arguments = json.loads(turn.arguments) if isinstance(turn.arguments, str) else turn.arguments
            except ValueError:
                continue
            if isinstance(arguments, dict) and (turn.tool, arguments) not in mistakes:
                mistakes.append((turn.tool, arguments))
    if not slips:
        raise ValueError(
            f"{path}: none of its episodes is on these tasks (ids such as {tasks[0].id if tasks else '?'}); "
            "evaluate the model with the same --tasks file"
        )
    return slips


def _teacher(config: TeachConfig, tasks: list[Task]):
    if config.teacher in ("trial", "recover"):
        teacher = TrialTeacher if config.teacher == "trial" else RecoverTeacher
        return teacher(
            mistake_rate=config.mistake_rate,
            seed=config.seed,
            slips=config.slips,
            quote_types=config.quotes_types,
            probe=config.probe if config.probes_with_examples else "empty",
            learner_slips=learner_slips(config.learner_episodes, tasks) if config.learns_from_learner else None,
        )
    if config.teacher == "golden":
        return GoldenTeacher()
    raise ValueError(f"teacher must be one of {', '.join(TEACHERS)}, got {config.teacher!r}")


def teacher_tasks(config: TeachConfig, catalog) -> list[Task]:
    """The tasks a teacher works on; the golden teacher gets them on documented tools."""
    if config.tasks_file:
        tasks = load_tasks(config.tasks_file, catalog)
    else:
        tasks = generate_tasks(config.split, config.n, config.seed, config.level, catalog)
    return [GoldenTeacher.documented(t) for t in tasks] if config.teacher == "golden" else tasks


def run_teacher(
    config: TeachConfig, tasks: list[Task], catalog, progress: bool = True, env_config: EnvConfig = TEACHER_ENV
) -> tuple[list[dict], list[str]]:
    """Rows for the tasks (from ``teacher_tasks``) the teacher
    solved, each verified by replay, and the ids it failed."""
    teacher = _teacher(config, tasks)
    env, check_env = ToolEnv(catalog, env_config), ToolEnv(catalog, env_config)
    rows, failed = [], []
    for task in tqdm(tasks, desc=f"{config.teacher} teacher", disable=not progress):
        if not task.calls:  # a user's task with no gold path: nothing to script, so report it rather than stop
            failed.append(task.id)
            continue
        trajectory = run_episode(env, teacher, task)
        row = trajectory_row(trajectory, teacher.name)
        if trajectory.success and replay(task, row["messages"], check_env).success:
            rows.append(row)
        else:
            failed.append(task.id)
    env.close()
    check_env.close()
    return rows, failed


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


# ----------------------------------------------------------------------------- the card


def _percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _recovery_example(rows: list[dict]) -> dict | None:
    """The first error in ``rows`` with a turn after it: its task, the error, and that turn's text and call."""
    for row in rows:
        messages = row["messages"]
        for i, message in enumerate(messages):
            if message["role"] == "tool" and '"error"' in message["content"] and i + 1 < len(messages):
                fixed = messages[i + 1]
                return {
                    "task_id": row["task_id"],
                    "query": row["query"],
                    "error": message["content"],
                    "turn": fixed["content"],
                    "call": fixed["tool_calls"][0]["function"] if fixed.get("tool_calls") else {},
                }
    return None


def repeated_trials(row: dict) -> int:
    """Trial calls identical to the next execution call of the same tool: probes that taught nothing."""
    calls, phases = turn_calls(row), row["phases"]
    count = 0
    for i, (call, phase) in enumerate(zip(calls, phases)):
        if phase == "trial" and call[0]:
            following = (c for c, p in zip(calls[i + 1 :], phases[i + 1 :]) if p == "execution" and c[0] == call[0])
            count += next(following, None) == call
    return count


def solved_by_level(tasks: list[Task], rows: list[dict]) -> dict[int, str]:
    """``{level: "solved/total"}`` over the tasks the teacher was given."""
    total = Counter(t.level for t in tasks)
    solved = Counter(row["level"] for row in rows)
    return {level: f"{solved[level]}/{total[level]}" for level in sorted(total)}


def dataset_card(
    rows: list[dict], failed: list[str], config: TeachConfig, tokenizer=None, tasks: list[Task] | None = None
) -> str:
    """A Markdown card: counts, phase statistics, trials, recovery, token lengths."""
    trials = [row["n_trials"] for row in rows]
    lengths = token_lengths(rows, tokenizer) if tokenizer is not None and rows else []
    return render(
        "dataset_card.md.jinja",
        config=config,
        how_they_teach=HOW_THEY_TEACH[config.teacher]
        + (QUOTING_TYPES if config.quotes_types else "")
        + (
            EXAMPLE_PROBES.format(probe=config.probe, fallback=FALLBACKS[config.probe])
            if config.probes_with_examples
            else ""
        )
        + (LEARNER_SLIPS.format(path=config.learner_episodes) if config.learns_from_learner else ""),
        trajectories=len(rows),
        failed=failed,
        splits=dict(Counter(row["split"] for row in rows)),
        solved=solved_by_level(tasks or [], rows),
        hops=dict(sorted(Counter(row["hops"] for row in rows).items())),
        phases=dict(Counter(p for row in rows for p in row["phases"])),
        trials_mean=statistics.fmean(trials) if trials else 0,
        trials_max=max(trials, default=0),
        repeated_trials=sum(repeated_trials(row) for row in rows),
        trials=sum(trials),
        calls_mean=statistics.fmean(row["n_calls"] for row in rows) if rows else 0,
        episodes_with_errors=sum(row["n_errors"] > 0 for row in rows),
        recovered=sum(row["n_recoveries"] for row in rows),
        errors=sum(row["n_errors"] for row in rows),
        slips=sum(m.get("train") is False for row in rows for m in row["messages"]),
        tokens=[int(statistics.median(lengths)), _percentile(lengths, 0.95), max(lengths)] if lengths else None,
        example=_recovery_example(rows),
    )


def llm_log_dir(out: str | Path) -> Path:
    """The LLM teacher's resumable logs: beside the dataset, which is replaced whole on every write."""
    out = Path(out)
    return out.with_name(f"{out.name}.llm-log")


def teach(config: TeachConfig, progress: bool = True, tokenizer=None, llm=None) -> Path:
    """Generate, verify and write one teacher dataset; returns its folder.

    ``llm`` is an ``LLMTeacherConfig`` for ``teacher="llm"`` (default: from the environment).
    """
    catalog = load_catalog(config.tools_modules)
    tasks = teacher_tasks(config, catalog)
    env_config = replace(TEACHER_ENV, max_turns=config.max_turns or TEACHER_ENV.max_turns)
    if config.teacher == "llm":
        from labkit.teachers.llm import ROWS_FILE, LLMTeacherConfig, generate_llm_trajectories

        llm = llm or LLMTeacherConfig.from_env()
        # The logs resume: another model or task set into them would mix two teachers' rows (more tasks extend them).
        same_run = {k: v for k, v in asdict(config).items() if k not in ("out", "n", "mistake_rate", "slips")}
        same_run.update(model=llm.model, temperature=llm.temperature, max_tokens=llm.max_tokens, llm_seed=llm.seed)
        claim_run_folder(llm_log_dir(config.out), same_run, config.command())
        log_dir = generate_llm_trajectories(tasks, llm_log_dir(config.out), llm, env_config, progress, catalog=catalog)
        rows = list(read_rows(log_dir / ROWS_FILE))
        kept = {row["task_id"] for row in rows}
        failed = [t.id for t in tasks if t.id not in kept]
    else:
        rows, failed = run_teacher(config, tasks, catalog, progress, env_config)
    return write_dataset(rows, config.out, dataset_card(rows, failed, config, tokenizer, tasks))
