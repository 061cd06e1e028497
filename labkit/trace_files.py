"""Trace files: find the runs the lab wrote, read them safely, and index each one lazily.

Every trace the lab writes is a row in the trajectory format of ``labkit.data.trajectory_row``:

- teacher datasets: ``DIR/data.parquet``;
- evaluation runs: ``DIR/episodes.jsonl`` (their ``traces/data.parquet`` holds the same rows);
- GRPO rollout groups: ``RUN/rollouts/step-NNNNN.jsonl``, rows that add ``step``, ``group`` (the prompt's index
  within the step), ``reward``, ``rewards`` (component -> value), ``advantage`` and ``loss_spans``
  (``[text, carried_loss]`` pairs covering the completion in order).

The trace viewer (``apps/trace_viewer.py``) reads only through a :class:`TraceLibrary`: inside the lab's ``data/``
and ``runs/`` folders and the paths it was given (``TraceAccessError`` otherwise). Opening a run keeps a small
:class:`EpisodeSummary` per episode and the byte offset of its line; a full row is parsed again only when it is
shown. Corrupt lines are skipped and counted. Querying the summaries is :mod:`labkit.trace_queries`, rendering
rows :mod:`labkit.trace_html`.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson  # gradio's own JSON library: parses trace lines about twice as fast as json

from labkit.evaluate import classify_failure
from labkit.rewards import COMPONENTS, RewardConfig

NUMBER_FIELDS = ("level", "seed", "n_trials", "n_calls", "n_errors", "n_recoveries", "step", "group")  # whole numbers


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


def float_or_none(value: Any) -> float | None:
    """A row's number (a reward, an advantage) as a float; None where the field holds none."""
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
        reward=float_or_none(row.get("reward")),
        advantage=float_or_none(row.get("advantage")),
        rewards={str(k): float_or_none(v) for k, v in rewards.items()} if isinstance(rewards, dict) else None,
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


# ----------------------------------------------------------------------------- what a GRPO run weighed


def reward_weights(ref: RunRef) -> dict[str, float] | None:
    """A GRPO run's reward weights, from the ``run_card.json`` beside its ``rollouts/`` folder; None for other runs."""
    card = ref.files[0].parent.parent / "run_card.json" if ref.kind == "rollouts" and ref.files else None
    if card is None or not card.is_file():
        return None
    # Read as logged, not through today's RewardConfig: a run from before a component was renamed keeps its own weights.
    settings = {f.name for f in fields(RewardConfig)} - set(COMPONENTS)
    return {
        name: float(value)
        for name, value in json.loads(card.read_text())["config"]["rewards"].items()
        if name not in settings
    }
