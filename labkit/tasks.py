"""Tasks: seeded generation, the JSONL format, and answer checking.

One task per JSONL line:

| field | type | meaning |
|-------|------|---------|
| id | str | unique id |
| query | str | the user's question |
| tools | list[str] | tools offered to the agent (documented names) |
| answer | str, number or list[str] | the gold answer |
| check | str | `exact`, `number` (relative `tolerance`), `set` or `contains` |
| tolerance | float | for `number` checks; default 0.01 |
| split | str | `train`, `seen`, `evolved`, `unseen` or `user` |
| level | int | evolution level 0-4 applied to the called tools; default 0 |
| evolve_seed | int | seed of that evolution; default 0 |
| calls | list | optional gold path: `{"name", "arguments", "read"}` per hop |
| template, families, hops | | where a generated task came from |

Anything else on a line is kept under `meta`, so nothing a user wrote is dropped.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

from labkit.tools.base import CHECK_KINDS, GoldCall
from labkit.tools.registry import Catalog, load_catalog

SPLITS = ("train", "seen", "evolved", "unseen")
TASKS_FILE_OPTION = {"flag": "--tasks", "help": "your own tasks JSONL instead of generated ones"}  # labkit.cli


class TaskFileError(ValueError):
    """A tasks file that cannot be read, with the line and the fix."""


@dataclass
class Task:
    id: str
    query: str
    tools: list[str]
    answer: Any
    check: str = "exact"
    tolerance: float = 0.01
    split: str = "user"
    level: int = 0
    evolve_seed: int = 0
    calls: list[GoldCall] = field(default_factory=list)
    template: str = ""
    families: list[str] = field(default_factory=list)
    hops: int = 1
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.calls = [c if isinstance(c, GoldCall) else GoldCall(**c) for c in self.calls]

    @property
    def called_tools(self) -> list[str]:
        """The tools the gold path calls, or every offered tool when there is no gold path."""
        return list(dict.fromkeys(c.name for c in self.calls)) or list(self.tools)

    def to_json(self) -> str:
        row = asdict(self)
        if not row["meta"]:
            del row["meta"]
        return json.dumps(row, ensure_ascii=False)

    @classmethod
    def from_row(cls, row: Any) -> "Task":
        if not isinstance(row, dict):
            raise ValueError("each line must be a JSON object")
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("id", "query", "tools", "answer") if k not in row]
        if missing:
            raise ValueError(f"missing field(s) {missing}; every task needs id, query, tools and answer")
        values = {k: v for k, v in row.items() if k in known}
        meta = row.get("meta", {})
        if (
            not isinstance(meta, dict)
            or not isinstance(row.get("calls", []), list)
            or not all(isinstance(c, dict) for c in row.get("calls", []))
        ):
            raise ValueError("'meta' must be a JSON object and 'calls' a list of objects")
        values["meta"] = {**meta, **{k: v for k, v in row.items() if k not in known}}
        task = cls(**values)
        _validate(task)
        return task


def _validate(task: Task) -> None:
    if not isinstance(task.id, str) or not task.id:
        raise ValueError("'id' must be a non-empty string")
    if not isinstance(task.query, str) or not task.query.strip():
        raise ValueError("'query' must be a non-empty string")
    if not isinstance(task.tools, list) or not task.tools or not all(isinstance(t, str) for t in task.tools):
        raise ValueError("'tools' must be a non-empty list of tool names")
    if task.check not in CHECK_KINDS:
        raise ValueError(f"'check' must be one of {', '.join(CHECK_KINDS)}, got {task.check!r}")
    if task.check == "number" and not _is_number(task.answer):
        raise ValueError("a 'number' check needs a numeric 'answer'")
    if task.check == "set" and not isinstance(task.answer, list):
        raise ValueError("a 'set' check needs a list 'answer'")
    if not _is_int(task.level) or not 0 <= task.level <= 4:
        raise ValueError(f"'level' must be an integer from 0 to 4, got {task.level!r}")
    if not _is_int(task.evolve_seed):
        raise ValueError(f"'evolve_seed' must be an integer, got {task.evolve_seed!r}")
    if task.split not in (*SPLITS, "user"):
        raise ValueError(f"'split' must be one of {', '.join(SPLITS)}, user; got {task.split!r}")
    if not _is_number(task.tolerance) or task.tolerance < 0:
        raise ValueError(f"'tolerance' must be a number of at least 0 (0.01 is 1%), got {task.tolerance!r}")
    if not isinstance(task.families, list) or not all(isinstance(f, str) for f in task.families):
        raise ValueError(f"'families' must be a list of family names, got {task.families!r}")
    if not isinstance(task.template, str) or not _is_int(task.hops) or task.hops < 1:
        raise ValueError(
            f"'template' must be a string and 'hops' a positive integer, got {task.template!r} and {task.hops!r}"
        )
    if not isinstance(task.meta, dict):
        raise ValueError(f"'meta' must be a JSON object, got {task.meta!r}")
    for call in task.calls:
        if (
            not isinstance(call.name, str)
            or not isinstance(call.arguments, dict)
            or not isinstance(call.read, (str, type(None)))
        ):
            raise ValueError('each of \'calls\' must be {"name": "tool", "arguments": {...}, "read": "key" or null}')


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ----------------------------------------------------------------------------- generation


def templates_for_split(catalog: Catalog, split: str) -> list:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    unseen = set(catalog.unseen_families)
    want_unseen = split == "unseen"
    chosen = [
        t
        for t in catalog.templates
        if (set(t.families) <= unseen) == want_unseen and (want_unseen or not set(t.families) & unseen)
    ]
    if not chosen:
        raise ValueError(f"no task templates for split {split!r}; bring your own tasks with --tasks FILE")
    return chosen


def _level_for(split: str, level: int | None, rng: random.Random) -> int:
    if level is not None:
        if split == "seen" and level != 0:
            raise ValueError("the seen split is level 0 by definition; use --split evolved for changed tools")
        if split == "evolved" and level == 0:
            raise ValueError("the evolved split needs a level from 1 to 4")
        return level
    if split == "train":
        return rng.randint(0, 4)
    if split == "evolved":
        return rng.randint(1, 4)
    return 0


def generate_tasks(
    split: str, n: int, seed: int = 0, level: int | None = None, catalog: Catalog | None = None
) -> list[Task]:
    """``n`` tasks for ``split``; the same arguments always give the same tasks."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    catalog = catalog or load_catalog()
    templates = templates_for_split(catalog, split)
    rng = random.Random(f"tasks:{split}:{seed}")
    tasks = []
    for i in range(n):
        template = rng.choice(templates)
        draft = template.make(random.Random(rng.getrandbits(64)))
        called = list(dict.fromkeys(c.name for c in draft.calls))
        tasks.append(
            Task(
                id=f"{split}-{seed}-{i:05d}",
                query=draft.query,
                tools=called + [t for t in draft.extra_tools if t not in called],
                answer=draft.answer,
                check=draft.check,
                tolerance=draft.tolerance,
                split=split,
                level=_level_for(split, level, rng),
                evolve_seed=rng.randrange(1_000_000),
                calls=list(draft.calls),
                template=template.name,
                families=list(template.families),
                hops=len(draft.calls),
            )
        )
    return tasks


# ----------------------------------------------------------------------------- files


def save_tasks(tasks: Iterable[Task], path: str | Path) -> Path:
    """Write JSONL atomically: a crash mid-write never leaves a half file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for task in tasks:
                f.write(task.to_json() + "\n")
        os.chmod(tmp, 0o644)  # mkstemp makes files private; task files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_tasks(path: str | Path, catalog: Catalog | None = None) -> list[Task]:
    """Read a tasks JSONL file, naming the line and the problem when one is wrong."""
    path = Path(path)
    if not path.is_file():
        raise TaskFileError(f"tasks file {path} does not exist; make one with `labkit tasks generate --out {path}`")
    tasks, seen_ids = [], set()
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # a BOM, as some editors on Windows write
    for lineno, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            task = Task.from_row(json.loads(line.decode("utf-8")))
        except UnicodeDecodeError:
            raise TaskFileError(f"{path}:{lineno}: not UTF-8 text; save the file as UTF-8") from None
        except (
            TypeError,
            ValueError,
            RecursionError,
        ) as exc:  # bad JSON, nesting too deep, or a field of the wrong type
            raise TaskFileError(f"{path}:{lineno}: {str(exc)[:300]}") from None
        if task.id in seen_ids:
            raise TaskFileError(f"{path}:{lineno}: duplicate task id {task.id!r}")
        if catalog is not None:
            unknown = [t for t in task.tools if t not in catalog]
            if unknown:
                raise TaskFileError(
                    f"{path}:{lineno}: unknown tool(s) {unknown}; pass the module that defines them with --tools-module"
                )
        seen_ids.add(task.id)
        tasks.append(task)
    if not tasks:
        raise TaskFileError(f"{path} holds no tasks")
    return tasks


# ----------------------------------------------------------------------------- checking

_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")


def normalize(text: Any) -> str:
    text = str(text).casefold().strip()
    text = re.sub(r"\s+", " ", text)
    return text.strip(" .!?;:'\"`")


def first_number(text: str) -> float | None:
    match = _NUMBER.search(str(text))
    return float(match.group().replace(",", "")) if match else None


def _items(text: str) -> set[str]:
    parts = re.split(r",|;|\n|\band\b", str(text))
    return {normalize(p) for p in parts if normalize(p)}


def check_answer(task: Task, prediction: str | None) -> bool:
    """Whether ``prediction`` answers ``task``. ``number`` checks read the first number in the reply."""
    if prediction is None:
        return False
    if task.check == "number":
        value = first_number(prediction)
        return value is not None and abs(value - float(task.answer)) <= task.tolerance * max(
            abs(float(task.answer)), 1.0
        )
    if task.check == "set":
        gold = task.answer if isinstance(task.answer, list) else [task.answer]
        return _items(prediction) == {normalize(g) for g in gold}
    if task.check == "contains":
        return normalize(task.answer) in normalize(prediction)
    return normalize(prediction) == normalize(task.answer)


def example_arguments(catalog: Catalog, tool_name: str, tries: int = 20) -> dict | None:
    """Arguments that a gold path uses for ``tool_name``: a documented, working call to start from."""
    family = catalog[tool_name].family
    for template in catalog.templates:
        if family not in template.families:
            continue
        for seed in range(tries):
            for call in template.make(random.Random(seed)).calls:
                if call.name == tool_name:
                    return dict(call.arguments)
    return None


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


def task_summary(tasks: list[Task]) -> dict[str, Counter]:
    """Counts by family, hops, level and check kind, for the task-sampling plots."""
    return {
        "family": Counter(f for t in tasks for f in t.families),
        "hops": Counter(t.hops for t in tasks),
        "level": Counter(t.level for t in tasks),
        "check": Counter(t.check for t in tasks),
    }
