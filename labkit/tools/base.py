"""The small types that tool families and task templates are written with.

A tool family is a plain module: functions with type hints and Google docstrings
(listed in ``TOOLS``), the local data they read, and ``TEMPLATES`` that turn a
seeded ``random.Random`` into a task whose gold answer comes from really calling
the tools. Nothing here imports torch or transformers.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

CHECK_KINDS = ("exact", "number", "set", "contains")


@dataclass(frozen=True)
class GoldCall:
    """One documented call on the gold path of a task.

    ``read`` names the key of the call's result that the next hop (or the final
    answer) needs, as a dot path such as ``"temperature"`` or ``"rate.value"``.
    """

    name: str
    arguments: dict[str, Any]
    read: str | None = None


@dataclass
class TaskDraft:
    """What a template returns: a question, its gold calls and its checked answer."""

    query: str
    calls: list[GoldCall]
    answer: Any
    check: str = "exact"
    tolerance: float = 0.01
    extra_tools: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.check not in CHECK_KINDS:
            raise ValueError(f"check must be one of {CHECK_KINDS}, got {self.check!r}")


@dataclass(frozen=True)
class TaskTemplate:
    """A named recipe for tasks over one or more tool families."""

    name: str
    families: tuple[str, ...]
    make: Callable[[random.Random], TaskDraft]


def read_path(result: Any, path: str | None) -> Any:
    """Follow a dot path (``"a.b.0"``) into a tool result; ``None`` returns it whole."""
    if path is None:
        return result
    value = result
    for part in path.split("."):
        if isinstance(value, list):
            value = value[int(part)]
        else:
            value = value[part]
    return value


def gold_call(func: Callable[..., Any], read: str | None, **arguments: Any) -> tuple[GoldCall, Any]:
    """Run a tool for real: its gold call, and the value a task reads from the result."""
    return GoldCall(func.__name__, arguments, read), read_path(func(**arguments), read)


def lookup(value: str, known: Iterable[str], what: str) -> str:
    """The known spelling of ``value``, matched ignoring case and surrounding spaces."""
    folded = str(value).strip().casefold()
    for name in known:
        if name.casefold() == folded:
            return name
    raise ValueError(f"unknown {what} {value!r}")


def parse_date(value: str) -> datetime.date:
    """A ``YYYY-MM-DD`` date, or a ``ValueError`` that says which format is expected."""
    try:
        return datetime.datetime.strptime(str(value).strip(), "%Y-%m-%d").date()
    except ValueError:
        raise ValueError(f"invalid date {value!r}: expected YYYY-MM-DD") from None
