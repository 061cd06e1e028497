"""Trace files for the trace viewer (``apps/trace_viewer.py``): find runs, open them lazily, filter, render.

Every trace the lab writes is a row in the trajectory format of ``labkit.data.trajectory_row``:

- teacher datasets: ``DIR/data.parquet``;
- evaluation runs: ``DIR/episodes.jsonl`` (their ``traces/data.parquet`` holds the same rows);
- GRPO rollout groups: ``RUN/rollouts/step-NNNNN.jsonl``, rows that add ``step``, ``group`` (the prompt's index
  within the step), ``reward``, ``rewards`` (component -> value), ``advantage`` and ``loss_spans``
  (``[text, carried_loss]`` pairs covering the completion in order).

The viewer reads only inside the lab's ``data/`` and ``runs/`` folders and the paths it was given
(``TraceAccessError`` otherwise). Opening a run keeps a small summary per episode and the byte offset of its
line; a full row is parsed again only when it is shown. Corrupt lines are skipped and counted. Every string
that came from a trace is HTML-escaped before it is rendered. A row's turns, and how each is coloured, are
read by ``labkit.episode``.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import urlencode

import orjson  # gradio's own JSON library: parses trace lines about twice as fast as json

from labkit.episode import Turn, TurnKind, episode_turns
from labkit.evaluate import FAILURES, classify_failure
from labkit.plots import PHASE_COLOURS

TURN_COLOURS = {**PHASE_COLOURS, "correction": "#d97706"}
TURN_MEANINGS = {
    TurnKind.TRIAL: "a call that tests what a tool accepts or returns (a rejected probe is how it learns)",
    TurnKind.EXECUTION: "a call that solves the task",
    TurnKind.ERROR: "a call to solve the task, or a turn, that the environment rejected",
    TurnKind.CORRECTION: "the first call that works after an error",
    TurnKind.ANSWER: "the final answer",
}
PAGE_SIZE = 50
LONG_TEXT = 600  # characters of an observation shown before it is collapsed
MAX_TEXT = 20_000  # characters of any one text rendered at all; the rest is counted, not shown
SKIPPED_EXAMPLES = 5  # corrupt lines named in a run's summary
NUMBER_FIELDS = (
    "level",
    "seed",
    "n_trials",
    "n_calls",
    "n_errors",
    "n_recoveries",
    "step",
    "group",
)  # whole numbers in a row


class TraceAccessError(ValueError):
    """A path the viewer may not read (outside data/, runs/ and the paths it was given) or that is not there."""


class TraceFormatError(ValueError):
    """A trace file that cannot be read at all. (Corrupt lines in a readable file are skipped and counted instead.)"""


# ----------------------------------------------------------------------------- runs on disk


@dataclass(frozen=True)
class RunRef:
    """A run the viewer can open: its id (what links carry), its kind and the files that hold its rows."""

    id: str
    kind: (
        str  # dataset (data.parquet) | eval (episodes.jsonl) | rollouts (rollouts/step-*.jsonl) | traces (other JSONL)
    )
    files: tuple[Path, ...]

    @property
    def label(self) -> str:
        return f"{self.id} ({self.kind})"


def _step_files(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted(folder.glob("step-*.jsonl")))


def _ref_at(path: Path, run_id: str) -> RunRef | None:
    """The run stored at ``path`` (a folder or a file), or None when nothing there looks like traces."""
    if path.is_file():
        if path.suffix == ".parquet":
            return RunRef(run_id, "dataset", (path,))
        if path.suffix == ".jsonl":
            kind = (
                "eval" if path.name == "episodes.jsonl" else "rollouts" if path.name.startswith("step-") else "traces"
            )
            return RunRef(run_id, kind, (path,))
        return None
    if not path.is_dir():
        return None
    if (path / "episodes.jsonl").is_file():
        return RunRef(run_id, "eval", (path / "episodes.jsonl",))
    if path.name == "rollouts" and _step_files(path):
        return RunRef(run_id, "rollouts", _step_files(path))
    for candidate in (path / "data.parquet", path / "traces" / "data.parquet"):
        if candidate.is_file():
            return RunRef(run_id, "dataset", (candidate,))
    if _step_files(path / "rollouts"):
        return RunRef(run_id, "rollouts", _step_files(path / "rollouts"))
    return None


def _discover(base: Path) -> Iterator[Path]:
    """Folders under ``base`` that hold a run. An eval run's traces/ copy and training checkpoints are skipped."""
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in ("checkpoints", "__pycache__"))
        here = Path(dirpath)
        if "episodes.jsonl" in filenames:
            dirnames[:] = [d for d in dirnames if d != "traces"]
            yield here
        elif "data.parquet" in filenames:
            yield here
        elif here.name == "rollouts" and any(f.startswith("step-") and f.endswith(".jsonl") for f in filenames):
            yield here


class TraceLibrary:
    """The runs under ``ROOT/data`` and ``ROOT/runs`` and the given paths; the only place the viewer reads from."""

    def __init__(self, paths: Iterable[str | Path] = (), root: str | Path | None = None):
        self.root = Path(root or Path.cwd()).resolve()
        given = []
        for p in paths:
            path = Path(p).expanduser()
            if not path.exists():
                raise TraceAccessError(f"{p} does not exist; pass trace files or folders of runs (e.g. runs/eval)")
            given.append(path.resolve())
        self.given = given
        self.allowed = [(self.root / "data").resolve(), (self.root / "runs").resolve(), *given]
        self._runs: dict[str, Run] = {}
        self._lock = threading.Lock()

    def allows(self, path: Path) -> bool:
        """Whether ``path``, its links followed, lies inside the allowed folders."""
        path = path.resolve()
        return any(path == base or path.is_relative_to(base) for base in self.allowed)

    def run_id(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)

    def runs(self) -> list[RunRef]:
        """Every run found now (runs written after the viewer started included), sorted by id."""
        refs: dict[str, RunRef] = {}
        for base in self.allowed:
            folders = [base] if base.is_file() else _discover(base) if base.is_dir() else []
            for path in folders:
                ref = _ref_at(path, self.run_id(path))
                if ref is not None and all(self.allows(f) for f in ref.files):  # a file may link out of the folder
                    refs.setdefault(ref.id, ref)
        return sorted(refs.values(), key=lambda r: r.id)

    def resolve(self, run_id: str) -> RunRef:
        """The run behind an id from a link or a client, refused unless it lies inside the allowed folders."""
        if not run_id or not str(run_id).strip():
            raise TraceAccessError("no run chosen: pick one from the list of runs")
        given = Path(str(run_id).strip()).expanduser()
        path = (
            given if given.is_absolute() else self.root / given
        ).resolve()  # resolve: no way out through .. or links
        if not self.allows(path):
            raise self._outside(run_id)
        if not path.exists():
            raise TraceAccessError(f"{run_id} does not exist (any more?); pick a run from the list")
        ref = _ref_at(path, self.run_id(path))
        if ref is None:
            raise TraceFormatError(
                f"no traces at {run_id}: expected episodes.jsonl, data.parquet or rollouts/step-*.jsonl there"
            )
        if not all(self.allows(f) for f in ref.files):  # a trace file inside that links out
            raise self._outside(run_id)
        return ref

    def _outside(self, run_id: str) -> TraceAccessError:
        folders = ", ".join(self.run_id(b) for b in self.allowed)
        return TraceAccessError(
            f"{run_id} is outside the folders the trace viewer may read ({folders}); "
            f"to open it, start the viewer with it: labkit view {run_id}"
        )

    def open(self, run_id: str) -> Run:
        """The run, indexed once and kept while its files are unchanged (a growing eval log is indexed again)."""
        ref = self.resolve(run_id)
        signature = _signature(ref.files)
        with self._lock:
            run = self._runs.get(ref.id)
            if run is None or run.signature != signature:
                run = open_run(ref)
                self._runs[ref.id] = run
            return run


def _signature(files: Iterable[Path]) -> tuple:
    stats = [(str(f), f.stat()) for f in files]
    return tuple((name, st.st_size, st.st_mtime_ns) for name, st in stats)


# ----------------------------------------------------------------------------- reading rows lazily


def _parse_row(line: bytes) -> dict | None:
    """A trace row, or None for a line that is not one (bad JSON, not an object, no messages)."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            row = json.loads(line)  # NaN and Infinity: json.dumps writes them, orjson refuses them
        except ValueError:
            return None
    if (
        not isinstance(row, dict)
        or not isinstance(row.get("messages"), list)
        or not all(isinstance(m, dict) for m in row["messages"])
    ):
        return None
    if any(isinstance(row.get(name), float) and not math.isfinite(row[name]) for name in NUMBER_FIELDS):
        return None  # json.dumps writes Infinity and NaN; a level or count cannot be one
    return row


class _JsonlRows:
    """Rows of JSONL files, found again by byte offset: a full row is parsed only when it is shown."""

    complete = True  # scan() yields whole rows

    def __init__(self, files: tuple[Path, ...]):
        self.files = files
        self.spans: list[tuple[int, int, int]] = []  # (file, offset, length) of each good line

    def scan(self, skipped: list[str]) -> Iterator[dict]:
        for file_index, path in enumerate(self.files):
            offset = 0
            with path.open("rb") as f:  # streamed: memory stays flat however large the file
                for lineno, line in enumerate(f, 1):
                    body = line.rstrip(b"\r\n")
                    if body.strip():
                        row = _parse_row(body)
                        if row is None:
                            skipped.append(f"{path.name}:{lineno}")
                        else:
                            self.spans.append((file_index, offset, len(body)))
                            yield row
                    offset += len(line)

    def row(self, index: int) -> dict:
        file_index, offset, length = self.spans[index]
        with self.files[file_index].open("rb") as f:
            f.seek(offset)
            row = _parse_row(f.read(length))
        if row is None:
            raise TraceFormatError(
                f"{self.files[file_index]} changed while it was open; choose the run again to reindex it"
            )
        return row


class _ParquetRows:
    """Rows of a parquet dataset: the summary columns are read at once, full rows one row group at a time."""

    complete = False  # scan() leaves out the heavy columns
    HEAVY = ("messages", "tools", "real_tools", "changes", "loss_spans")

    def __init__(self, path: Path):
        import pyarrow.parquet as pq
        from pyarrow import ArrowException

        self.path = path
        self._errors = (ArrowException, OSError)
        try:
            self.file = pq.ParquetFile(path)
        except self._errors as exc:
            raise TraceFormatError(
                f"{path} is not a readable parquet file ({exc}); regenerate it (labkit teach / labkit eval)"
            ) from exc
        self.names = self.file.schema_arrow.names
        if "messages" not in self.names:
            raise TraceFormatError(f"{path} has no messages column, so it holds no traces")
        sizes = [self.file.metadata.row_group(g).num_rows for g in range(self.file.num_row_groups)]
        self.starts = [sum(sizes[:g]) for g in range(len(sizes) + 1)]
        self._group: tuple[int, list[dict]] | None = None  # the last row group read: browsing stays inside it

    def scan(self, skipped: list[str]) -> Iterator[dict]:
        try:
            table = self.file.read(columns=[n for n in self.names if n not in self.HEAVY])
        except self._errors as exc:
            raise TraceFormatError(f"{self.path} cannot be read ({exc}); regenerate it") from exc
        yield from table.to_pylist()

    def row(self, index: int) -> dict:
        group = next(g for g in range(len(self.starts) - 1) if self.starts[g] <= index < self.starts[g + 1])
        if self._group is None or self._group[0] != group:
            try:
                self._group = (group, self.file.read_row_group(group).to_pylist())
            except self._errors as exc:
                raise TraceFormatError(f"{self.path} row group {group} cannot be read ({exc}); regenerate it") from exc
        return self._group[1][index - self.starts[group]]


# ----------------------------------------------------------------------------- episodes


@dataclass(slots=True)
class EpisodeSummary:
    """What the table, the filters and the charts need of one episode; the full row stays on disk."""

    index: int
    task_id: str
    seed: int | None
    split: str
    level: int
    families: tuple[str, ...]
    policy: str
    success: bool
    failure: str  # the failure taxonomy label, "" for a success
    n_trials: int
    n_calls: int
    query: str
    step: int | None = None
    group: int | None = None
    reward: float | None = None
    advantage: float | None = None
    rewards: dict | None = None
    haystack: str = ""  # lower-case text the search box looks in


def _int(value: Any, default: int | None = 0) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a parquet column of floats holding inf
        return default


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def failure_of(row: dict) -> str:
    """The row's failure label: stored by ``labkit eval``, else classified here; "" for a success."""
    if row.get("success"):
        return ""
    if row.get("failure"):
        return str(row["failure"])
    try:
        return classify_failure(row) or ""
    except (KeyError, TypeError, ValueError, IndexError):  # a row without the fields the taxonomy reads
        return "unclassified"


def _summary(index: int, row: dict, failure: str) -> EpisodeSummary:
    families = row.get("families") or []
    called = row.get("tools_called") or []
    rewards = row.get("rewards")
    summary = EpisodeSummary(
        index=index,
        task_id=str(row.get("task_id", "")),
        seed=_int(row.get("seed"), None),
        split=str(row.get("split") or ""),
        level=_int(row.get("level")),
        families=tuple(str(f) for f in families) if isinstance(families, list) else (str(families),),
        policy=str(row.get("policy") or ""),
        success=bool(row.get("success")),
        failure=failure,
        n_trials=_int(row.get("n_trials")),
        n_calls=_int(row.get("n_calls")),
        query=str(row.get("query") or ""),
        step=_int(row.get("step"), None),
        group=_int(row.get("group"), None),
        reward=_float(row.get("reward")),
        advantage=_float(row.get("advantage")),
        rewards={str(k): _float(v) for k, v in rewards.items()} if isinstance(rewards, dict) else None,
    )
    tools = " ".join(str(c) for c in called) if isinstance(called, list) else ""
    summary.haystack = f"{summary.task_id} {summary.query} {row.get('template', '')} {tools}".lower()
    return summary


@dataclass
class Run:
    """An opened run: one summary per episode, the corrupt lines it skipped, and how long opening took."""

    ref: RunRef
    episodes: list[EpisodeSummary]
    skipped: list[str]  # "file:line" of each corrupt line
    seconds: float
    signature: tuple
    rows: _JsonlRows | _ParquetRows = field(repr=False)

    def row(self, index: int) -> dict:
        if not 0 <= index < len(self.episodes):
            raise TraceAccessError(
                f"{self.ref.id} has episodes 0 to {len(self.episodes) - 1}; there is no episode {index}"
            )
        return self.rows.row(index)

    @property
    def has_groups(self) -> bool:
        return any(e.group is not None for e in self.episodes)

    def describe(self) -> str:
        """One line of Markdown: size, opening time, and the corrupt lines left out."""
        text = (
            f"**{markdown_text(self.ref.id)}** ({self.ref.kind}): "
            f"{len(self.episodes):,} episodes, opened in {self.seconds:.2f} s."
        )
        if self.skipped:
            shown = markdown_text(", ".join(self.skipped[:SKIPPED_EXAMPLES])) + (
                ", ..." if len(self.skipped) > SKIPPED_EXAMPLES else ""
            )
            text += f" Skipped {len(self.skipped):,} corrupt line{'s' if len(self.skipped) > 1 else ''} ({shown})."
        return text


def open_run(ref: RunRef) -> Run:
    """Index a run: one pass over its rows keeps a summary per episode; corrupt lines are skipped and counted."""
    start = time.perf_counter()
    signature = _signature(ref.files)
    rows = _ParquetRows(ref.files[0]) if ref.kind == "dataset" else _JsonlRows(ref.files)
    skipped: list[str] = []
    episodes = []
    for index, row in enumerate(rows.scan(skipped)):
        failed = not row.get("success")
        # A parquet scan leaves out the messages; classifying a failure needs them, so read that one row in full.
        failure = failure_of(row if rows.complete or row.get("failure") or not failed else rows.row(index))
        episodes.append(_summary(index, row, failure))
    if skipped and not episodes:
        raise TraceFormatError(
            f"{ref.id}: none of its {len(skipped)} lines is a trace row (a JSON object with a messages list); "
            "is it a tasks file? Open a file written by labkit teach, labkit eval or GRPO"
        )
    return Run(ref, episodes, skipped, time.perf_counter() - start, signature, rows)


# ----------------------------------------------------------------------------- filters, pages, links


ANY = ""  # a filter field left open


@dataclass(frozen=True)
class EpisodeFilter:
    split: str = ANY
    family: str = ANY
    level: int | None = None
    policy: str = ANY
    outcome: str = ANY  # "solved" | "failed"
    failure: str = ANY
    search: str = ""

    def matches(self, e: EpisodeSummary) -> bool:
        return (
            (not self.split or e.split == self.split)
            and (not self.family or self.family in e.families)
            and (self.level is None or e.level == self.level)
            and (not self.policy or e.policy == self.policy)
            and (not self.outcome or e.success == (self.outcome == "solved"))
            and (not self.failure or e.failure == self.failure)
            and (not self.search or self.search.strip().lower() in e.haystack)
        )

    def apply(self, episodes: list[EpisodeSummary]) -> list[EpisodeSummary]:
        if self == EpisodeFilter():
            return episodes
        return [e for e in episodes if self.matches(e)]


def filter_options(episodes: list[EpisodeSummary]) -> dict[str, list]:
    """The values each filter can take in this run."""
    failures = {e.failure for e in episodes if e.failure}
    return {
        "split": sorted({e.split for e in episodes if e.split}),
        "family": sorted({f for e in episodes for f in e.families}),
        "level": sorted({e.level for e in episodes}),
        "policy": sorted({e.policy for e in episodes if e.policy}),
        "outcome": ["solved", "failed"],
        "failure": [f for f in FAILURES if f in failures] + sorted(failures - set(FAILURES)),
    }


TABLE_COLUMNS = ["episode", "task", "seed", "split", "level", "families", "policy", "outcome", "trials", "calls"]


def table_rows(episodes: list[EpisodeSummary]) -> list[list]:
    return [
        [
            e.index,
            e.task_id,
            "" if e.seed is None else e.seed,
            e.split,
            e.level,
            ", ".join(e.families),
            e.policy,
            "solved" if e.success else f"failed: {e.failure}",
            e.n_trials,
            e.n_calls,
        ]
        for e in episodes
    ]


@dataclass
class Page:
    rows: list[list]
    number: int  # 1-based, clamped to the pages there are
    pages: int
    matching: int

    def describe(self) -> str:
        return f"page {self.number} of {self.pages} ({self.matching:,} matching episodes)"


def page_of(episodes: list[EpisodeSummary], number: int, size: int = PAGE_SIZE) -> Page:
    pages = max(1, -(-len(episodes) // size))
    number = min(max(1, int(number or 1)), pages)
    return Page(table_rows(episodes[(number - 1) * size : number * size]), number, pages, len(episodes))


def episode_link(run_id: str, index: int) -> str:
    """The query string that opens this episode when appended to the viewer's address."""
    return "?" + urlencode({"run": run_id, "episode": index})


# ----------------------------------------------------------------------------- HTML (every trace string escaped)


def _esc(value: Any) -> str:
    text = str(value)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + f" ... [{len(text) - MAX_TEXT:,} more characters not shown]"
    return html.escape(text, quote=True)


def markdown_text(value: Any) -> str:
    """Text as one line of Markdown that shows it as it is: with every ASCII punctuation mark backslash-escaped,
    no link, image, emphasis, autolink or HTML can form (a link's ?run= is anyone's text)."""
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", " ".join(str(value)[:MAX_TEXT].split()))


def _json(value: Any) -> Any:
    """A JSON string column (tools, changes, gold_answer) as data; anything else as it is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def call_text(tool: str, arguments: Any) -> str:
    """A tool call as code: name(key=value, ...), or the raw arguments when they are not a JSON object."""
    parsed = _json(arguments) if arguments not in (None, "") else {}
    if isinstance(parsed, dict):
        return f"{tool}({', '.join(f'{k}={json.dumps(v, ensure_ascii=False)}' for k, v in parsed.items())})"
    return f"{tool}({arguments})"


def phase_legend_html() -> str:
    chips = "".join(
        f'<span class="tv-chip" data-kind="{kind}" title="{html.escape(TURN_MEANINGS[kind])}" '
        f'style="display:inline-block;margin:0 10px 4px 0"><span style="display:inline-block;width:11px;height:11px;'
        f'border-radius:3px;background:{TURN_COLOURS[kind]};vertical-align:middle;margin-right:4px"></span>'
        f"<b>{kind}</b>: {html.escape(TURN_MEANINGS[kind])}</span>"
        for kind in TurnKind
    )
    return f'<div class="tv-legend" style="font-size:13px">{chips}</div>'


def _observation_html(turn: Turn) -> str:
    if turn.observation is None:
        return ""
    colour = TURN_COLOURS["error"] if turn.error else "inherit"
    label = f'<span style="opacity:.6;font-size:11px">{"error" if turn.error else "returned"}</span> '
    style = f"margin:2px 0 0;white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px;color:{colour}"
    if len(turn.observation) <= LONG_TEXT:
        return f'<div class="tv-obs">{label}<pre style="{style};display:inline">{_esc(turn.observation)}</pre></div>'
    head = _esc(turn.observation[:160])
    return (
        '<details class="tv-obs tv-long">'
        f'<summary style="cursor:pointer;font-size:12px;overflow-wrap:anywhere">{label}{head} ... '
        f"<i>({len(turn.observation):,} characters: show all)</i></summary>"
        f'<pre style="{style}">{_esc(turn.observation)}</pre></details>'
    )


def _turn_html(turn: Turn) -> str:
    colour = TURN_COLOURS[turn.kind]
    stated = f"wrote {turn.phase}" if turn.phase != turn.kind else ""
    notes = " · ".join(n for n in (f"turn {turn.number}", stated, f"error: {turn.error}" if turn.error else "") if n)
    call = (
        '<div class="tv-call"><span style="opacity:.6;font-size:11px">call</span> '
        f"<code>{_esc(call_text(turn.tool, turn.arguments))}</code></div>"
        if turn.tool
        else ""
    )
    return (
        f'<div class="tv-turn" data-kind="{turn.kind}" style="border-left:5px solid {colour};'
        f'background:{colour}12;border-radius:4px;padding:6px 10px;margin:6px 0">'
        f'<div class="tv-head" style="font-size:12px"><span class="tv-kind" style="background:{colour};color:#fff;'
        f'border-radius:3px;padding:1px 6px;font-weight:600">{turn.kind}</span> '
        f'<span style="opacity:.75">{_esc(notes)}</span></div>'
        '<div class="tv-text" style="white-space:pre-wrap;overflow-wrap:anywhere;margin-top:3px">'
        f"{_esc(turn.text.strip())}</div>"
        f"{call}{_observation_html(turn)}</div>"
    )


def timeline_html(row: dict) -> str:
    """The episode turn by turn, each coloured by its kind (trial, execution, error, correction, answer)."""
    facts = [
        ("task", row.get("task_id", "")),
        ("split", row.get("split", "")),
        ("level", row.get("level", "")),
        (
            "families",
            ", ".join(map(str, families)) if isinstance(families := row.get("families") or [], list) else families,
        ),
        ("policy", row.get("policy", "")),
    ]
    if row.get("seed") is not None:
        facts.append(("seed", row["seed"]))
    header = " · ".join(f"{name} <b>{_esc(value)}</b>" for name, value in facts)
    turns = "".join(_turn_html(t) for t in episode_turns(row))
    return (
        f'<div class="tv-timeline"><div class="tv-meta" style="font-size:12px;opacity:.8">{header}</div>'
        f'<div class="tv-query" style="font-size:15px;margin:4px 0 8px"><b>Task:</b> {_esc(row.get("query", ""))}</div>'
        f"{turns or '<p>(no turns)</p>'}</div>"
    )


def reward_weights(ref: RunRef) -> dict[str, float] | None:
    """A GRPO run's reward weights, from the ``run_card.json`` beside its ``rollouts/`` folder; None for other runs."""
    card = ref.files[0].parent.parent / "run_card.json" if ref.kind == "rollouts" and ref.files else None
    if card is None or not card.is_file():
        return None
    from dataclasses import fields

    from labkit.rewards import COMPONENTS, RewardConfig

    # Read as logged, not through today's RewardConfig: a run from before a component was renamed keeps its own weights.
    settings = {f.name for f in fields(RewardConfig)} - set(COMPONENTS)
    return {
        name: float(value)
        for name, value in json.loads(card.read_text())["config"]["rewards"].items()
        if name not in settings
    }


def outcome_html(row: dict, weights: dict[str, float] | None = None) -> str:
    """The final answer against the gold answer, the verdict, and any
    reward components (weighted, with ``weights``, so they add up)."""
    success = bool(row.get("success"))
    verdict_colour = TURN_COLOURS["execution"] if success else TURN_COLOURS["error"]
    verdict = "solved" if success else f"failed: {failure_of(row)}"
    gold = _json(row.get("gold_answer", ""))
    lines = [
        f'<div class="tv-outcome" data-success="{str(success).lower()}" '
        f'style="border:1px solid {verdict_colour};border-radius:6px;padding:8px 10px">',
        f'<div style="font-weight:700;color:{verdict_colour}">{_esc(verdict)}</div>',
        f'<div>answer: <code class="tv-answer">{_esc(row.get("answer", ""))}</code></div>',
        '<div>gold: <code class="tv-gold">'
        f"{_esc(json.dumps(gold, ensure_ascii=False) if not isinstance(gold, str) else gold)}</code>"
        f' <span style="opacity:.7">(check: {_esc(row.get("check", "?"))})</span></div>',
        '<div style="font-size:12px;opacity:.75">ended: '
        f"{_esc(row.get('end_reason', ''))} · trials {_esc(row.get('n_trials', ''))}"
        f" · calls {_esc(row.get('n_calls', ''))} · errors {_esc(row.get('n_errors', ''))} "
        f"· recoveries {_esc(row.get('n_recoveries', ''))}</div>",
    ]
    rewards = row.get("rewards")
    if isinstance(rewards, dict) or row.get("reward") is not None:
        cell = "padding:1px 10px;border:none"
        shown = {
            (f"{k} × {weights[k]:g}" if weights and k in weights else k): _weighted(v, k, weights)
            for k, v in (rewards or {}).items()
        }
        cells = "".join(
            f"<tr><td style='{cell}'>{_esc(k)}</td><td style='{cell};text-align:right'>{_number(v)}</td></tr>"
            for k, v in shown.items()
        )
        for name in ("reward", "advantage"):
            if row.get(name) is not None:
                cells += (
                    f"<tr><td style='{cell}'><b>{name}</b></td>"
                    f"<td style='{cell};text-align:right'><b>{_number(row[name])}</b></td></tr>"
                )
        lines.append(
            '<table class="tv-rewards" style="margin:6px 0 0;font-size:13px;width:auto">'
            f'<tr><th style="{cell}">reward component</th><th style="{cell}">value</th></tr>{cells}</table>'
        )
    lines.append("</div>")
    return "".join(lines)


def _weighted(value: Any, component: str, weights: dict[str, float] | None) -> Any:
    number = _float(value)
    return number * weights[component] if weights and component in weights and number is not None else value


def _number(value: Any) -> str:
    number = _float(value)
    return _esc(value) if number is None else f"{number:+.3f}"


def _type_text(spec: Any) -> str:
    """A parameter's type; an enum as its first values, so long unit lists stay on one line."""
    spec = spec if isinstance(spec, dict) else {}
    if "enum" in spec:
        values = [str(v) for v in spec["enum"]]
        return " | ".join(values[:3]) + (f" | ... ({len(values)} values)" if len(values) > 3 else "")
    return str(spec.get("type", "?"))


def _signature_html(function: dict | None, other: dict | None) -> str:
    """name(param: type, optional?: type); parameters the other side lacks are marked."""
    if function is None:
        return '<span style="opacity:.6">not documented</span>'
    params = (function.get("parameters") or {}).get("properties") or {}
    required = set((function.get("parameters") or {}).get("required") or [])
    theirs = ((other or {}).get("parameters") or {}).get("properties") or {}
    parts = []
    for name, spec in params.items():
        text = f"{_esc(name)}{'' if name in required else '?'}: {_esc(_type_text(spec))}"
        parts.append(
            f'<mark title="the other side has no {_esc(name)}">{text}</mark>'
            if other is not None and name not in theirs
            else text
        )
    notes = "".join(
        f"<li><code>{_esc(name)}</code>: {_esc((spec or {}).get('description', ''))}</li>"
        for name, spec in params.items()
        if other is not None
        and name in theirs
        and (spec or {}).get("description") != (theirs[name] or {}).get("description")
    )
    return (
        "<code style='white-space:normal;overflow-wrap:anywhere'>"
        f"{_esc(function.get('name', ''))}({', '.join(parts)})</code>"
        + (f'<ul style="margin:2px 0;font-size:12px">{notes}</ul>' if notes else "")
    )


def tool_docs_html(row: dict) -> str:
    """For evolved tools: the documentation the agent saw beside the tool's real signature, and what changed."""
    changes = _json(row.get("changes") or "[]")
    if not changes:
        return (
            '<div class="tv-docs" style="font-size:13px;opacity:.8">'
            "Tools as documented: nothing was changed (level 0).</div>"
        )
    docs = {
        d["function"]["name"]: d["function"]
        for d in _json(row.get("tools") or "[]")
        if isinstance(d, dict) and "function" in d
    }
    real = {
        d["function"]["name"]: d["function"]
        for d in _json(row.get("real_tools") or "[]")
        if isinstance(d, dict) and "function" in d
    }
    changed = {str(c.get("tool")) for c in changes if isinstance(c, dict)}
    names = sorted((changed | (set(real) - set(docs))) & (set(docs) | set(real)))
    rows = "".join(
        f'<tr><td style="vertical-align:top">{_signature_html(docs.get(n), real.get(n))}</td>'
        f'<td style="vertical-align:top">{_signature_html(real.get(n), docs.get(n))}</td></tr>'
        for n in names
    )
    what = "".join(
        f"<li><b>{_esc(c.get('operator', ''))}</b> on "
        f"<code>{_esc(c.get('tool', ''))}</code>: {_esc(c.get('detail', ''))}</li>"
        for c in changes
        if isinstance(c, dict)
    )
    return (
        '<div class="tv-docs" style="font-size:13px"><table style="width:100%;table-layout:fixed">'
        "<tr><th>documentation the agent saw</th><th>the tool as it really is</th></tr>"
        f'{rows}</table><div style="margin-top:4px"><b>What changed</b> (hidden '
        f'from the agent):<ul style="margin:2px 0">{what}</ul></div></div>'
    )


def episode_html(row: dict, weights: dict[str, float] | None = None) -> str:
    """Everything about one episode in one column (the Compare view puts two side by side)."""
    return timeline_html(row) + outcome_html(row, weights) + '<div style="height:8px"></div>' + tool_docs_html(row)


def loss_spans_html(row: dict) -> str:
    """The completion as GRPO trained on it: text that carried loss (the model's own tokens) highlighted."""
    spans = row.get("loss_spans")
    if not isinstance(spans, list) or not spans:
        return "<p>This row has no loss_spans: which tokens carried loss was not recorded.</p>"
    parts, carried, total = [], 0, 0
    for span in spans:
        if not isinstance(span, (list, tuple)) or len(span) != 2:
            continue
        text, loss = str(span[0]), bool(span[1])
        total += len(text)
        carried += len(text) * loss
        style = "background:#16a34a33;border-bottom:2px solid #16a34a" if loss else "opacity:.55"
        parts.append(f'<span class="tv-span" data-loss="{str(loss).lower()}" style="{style}">{_esc(text)}</span>')
    share = f"{carried / total:.0%}" if total else "0%"
    return (
        '<div class="tv-loss"><p style="font-size:13px">'
        '<span style="background:#16a34a33;border-bottom:2px solid #16a34a">highlighted</span> '
        "text carried loss (sampled by the model); the rest (tool "
        f"results, template) did not: {share} of {total:,} characters.</p>"
        '<pre style="white-space:pre-wrap;word-break:break-word;font-size:12px;line-height:1.5">'
        f"{''.join(parts)}</pre></div>"
    )


# ----------------------------------------------------------------------------- compare, groups, aggregates


@dataclass
class TaskPair:
    """The same task (and seed) in two runs."""

    label: str  # "task · seed  A ✓ B ✗"
    a: int  # episode index in run A
    b: int  # episode index in run B


def shared_tasks(a: Run, b: Run) -> list[TaskPair]:
    """Tasks both runs played, the ones where exactly one of them succeeded first."""

    def keyed(run: Run) -> dict[str, EpisodeSummary]:
        return {e.task_id + ("" if e.seed is None else f" · seed {e.seed}"): e for e in run.episodes}

    left, right = keyed(a), keyed(b)
    pairs = []
    for key, ea in left.items():
        eb = right.get(key)
        if eb is not None:
            mark = lambda e: "✓" if e.success else "✗"  # noqa: E731
            pairs.append((ea.success == eb.success, TaskPair(f"{key}  A {mark(ea)} B {mark(eb)}", ea.index, eb.index)))
    return [pair for _, pair in sorted(pairs, key=lambda p: p[0])]


def rollout_groups(run: Run) -> dict[tuple[int, int], list[EpisodeSummary]]:
    """(step, group) -> the rollouts of that prompt, in file order."""
    groups: dict[tuple[int, int], list[EpisodeSummary]] = defaultdict(list)
    for e in run.episodes:
        if e.group is not None:
            groups[(e.step or 0, e.group)].append(e)
    return dict(sorted(groups.items()))


def group_rows(members: list[EpisodeSummary], weights: dict[str, float] | None = None) -> tuple[list[str], list[list]]:
    """A table of one prompt's rollouts: reward, advantage, each
    reward component (times its weight, with ``weights``), outcome."""
    components = list(dict.fromkeys(k for e in members for k in (e.rewards or {})))
    named = [f"{c} × {weights[c]:g}" if weights and c in weights else c for c in components]
    header = ["rollout", "episode", "reward", "advantage", *named, "result", "trials", "calls"]
    rows = [
        [
            i,
            e.index,
            *[
                _round(v)
                for v in (e.reward, e.advantage, *[_weighted((e.rewards or {}).get(c), c, weights) for c in components])
            ],
            "solved" if e.success else f"failed: {e.failure}",
            e.n_trials,
            e.n_calls,
        ]
        for i, e in enumerate(members)
    ]
    return header, rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def success_by_split_level(episodes: list[EpisodeSummary]) -> list[dict]:
    cells: dict[tuple[str, int], list[bool]] = defaultdict(list)
    for e in episodes:
        cells[(e.split or "?", e.level)].append(e.success)
    return [
        {
            "split · level": f"{split} · L{level} (n={len(v)})",
            "split": split,
            "level": level,
            "success": sum(v) / len(v),
            "episodes": len(v),
        }
        for (split, level), v in sorted(cells.items())
    ]


def trials_histogram(episodes: list[EpisodeSummary]) -> list[dict]:
    counts = Counter(e.n_trials for e in episodes)
    return [{"trials": str(k), "episodes": counts.get(k, 0)} for k in range(max(counts, default=-1) + 1)]


def failure_counts(episodes: list[EpisodeSummary]) -> list[dict]:
    counts = Counter(e.failure for e in episodes if e.failure)
    order = [f for f in FAILURES if f in counts] + sorted(set(counts) - set(FAILURES))
    return [{"failure": f.replace("_", " "), "episodes": counts[f]} for f in order]


def default_comparison(refs: list[RunRef]) -> tuple[str, str] | None:
    """A golden-vs-trial pair of runs on the same tasks (evolved first), for the Compare view to open with."""
    ids = {r.id for r in refs}
    pairs = [
        (r.id, r.id.replace("golden", "trial"))
        for r in refs
        if "golden" in r.id and r.id.replace("golden", "trial") in ids
    ]
    pairs.sort(key=lambda pair: "evolved" not in pair[0])
    return pairs[0] if pairs else None
