"""The error messages and value formats the environment writes and the scripted teacher reads back.

An agent learns how a tool changed only from what the tool says, and the scripted
teacher learns the same way: it reads renamed parameters, date formats and
successors out of error messages, and units out of output keys. That makes their
wording an interface. Each message the teacher reads is one ``Template`` here: the
environment writes it with ``format``, the teacher reads it with ``find`` or
``find_all``, whose regex is derived from the same text, so writer and reader
cannot drift apart (tests/test_messages.py checks that each template reads back
what it wrote). The date formats and units are defined here once for the same reason.

This module holds wording only, nothing about how any tool changed, so the teacher
may import it (it must not import ``labkit.evolve`` or ``labkit.toolset``).
Messages nobody reads (a disabled look-alike, a timeout, bad JSON) stay beside the
code that raises them.
"""

from __future__ import annotations

import re
import string
from typing import Any, Iterable

NAME = r"[^']+"  # a quoted tool or parameter name, read up to the closing quote: names are identifiers
SEPARATOR = ", "  # between the names or choices of a list

# The formats and units an evolved tool may switch to.
DATE_FORMATS = {
    "DD.MM.YYYY": (r"^\d{2}\.\d{2}\.\d{4}$", "%d.%m.%Y"),
    "YYYYMMDD": (r"^\d{8}$", "%Y%m%d"),
}  # label -> (regex, strptime)
UNIT_SCALES = [(1000, "_milli"), (100, "_centi")]  # (factor, the suffix a rescaled output key gets)


class Template:
    """One message with ``{field}`` slots, each read back with the regex given for it.

    ``end=True`` when the message must end with the template: an error cut to length
    has lost its end, and a list read from it would be incomplete.
    """

    def __init__(self, text: str, end: bool = False, **fields: str):
        self.text = text
        regex = ""
        for literal, field, _, _ in string.Formatter().parse(text):
            regex += re.escape(literal) + (f"(?P<{field}>{fields[field]})" if field is not None else "")
        self.pattern = re.compile(regex + ("$" if end else ""))

    def format(self, **values: Any) -> str:
        return self.text.format(**values)

    def find(self, message: str) -> dict[str, str] | None:
        """The fields of the template's first occurrence in ``message`` (a ``!r`` field as its repr), or None."""
        match = self.pattern.search(message)
        return match.groupdict() if match else None

    def find_all(self, message: str) -> list:
        """Every occurrence, as ``re.findall`` gives them: the field's text, or a tuple for several fields."""
        return self.pattern.findall(message)


def join_list(values: Iterable) -> str:
    return SEPARATOR.join(str(v) for v in values)


def split_list(text: str) -> list[str]:
    return text.split(SEPARATOR) if text else []


# ----------------------------------------------------------------------------- a call that does not fit the signature
# What an empty call (a trial) gets back, so what the teacher learns a tool's current parameters from.

UNEXPECTED_PARAMETER = Template("unexpected parameter '{name}'", name=NAME)
MISSING_PARAMETER = Template("missing required parameter '{name}' ({spec})", name=NAME, spec=r"[^)]*")
ACCEPTED_PARAMETERS = Template("Accepted parameters: {names}.", end=True, names=r".+")
CHOICES_SPEC = Template("{type}, one of: {choices}", end=True, type=r"[^,]*", choices=r".*")  # a spec with choices


def parameter_spec(kind: str, choices: Iterable | None) -> str:
    """How a missing parameter is described: its type, and its choices if it has some."""
    return kind if choices is None else CHOICES_SPEC.format(type=kind, choices=join_list(choices))


def read_parameter_spec(spec: str) -> tuple[str, list[str] | None]:
    """``parameter_spec``'s text back as (type, choices or None)."""
    found = CHOICES_SPEC.find(spec)
    return (found["type"], split_list(found["choices"])) if found else (spec, None)


def signature_error(tool: str, unexpected: list[str], missing: list[tuple[str, str]], accepted: list[str]) -> str:
    """Every parameter the call should not have sent, every (name, spec) it left out, then all the tool accepts."""
    problems = [UNEXPECTED_PARAMETER.format(name=name) for name in unexpected]
    problems += [MISSING_PARAMETER.format(name=name, spec=spec) for name, spec in missing]
    return f"{tool}: {'; '.join(problems)}. " + ACCEPTED_PARAMETERS.format(names=join_list(accepted) or "none")


# ----------------------------------------------------------------------------- a value the tool refuses

WRONG_TYPE = Template(
    "{tool}: parameter '{name}' must be {type}, got {got} {value}",  # value: the start of the JSON sent
    tool=r".+?",
    name=NAME,
    type=r"[a-z]+",
    got=r"\S+",
    value=r".*",
)
NOT_ONE_OF = Template(
    "{tool}: parameter '{name}' must be one of: {choices}; got {value!r}",
    tool=r".+?",
    name=NAME,
    choices=r".+?",
    value=r".*",
)
WRONG_DATE_FORMAT = Template(
    "invalid value {value!r} for parameter '{name}': expected format {label}",
    value=r".*?",
    name=NAME,
    label="|".join(map(re.escape, DATE_FORMATS)),
)
NOT_UPPER_CASE = Template(
    "invalid value {value!r} for parameter '{name}': must be upper-case (pattern ^[^a-z]+$)",
    value=r".*?",
    name=NAME,
)

# ----------------------------------------------------------------------------- a tool that is gone

REMOVED = Template("'{tool}' was removed on {date}; use '{successor}' instead.", tool=NAME, date=r"\S+", successor=NAME)
