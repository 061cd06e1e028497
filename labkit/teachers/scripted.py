"""Scripted teachers: trial-and-execution, recover-only, and the golden baseline.

``TrialTeacher`` knows the task's gold path *as documented* (which tools, which
arguments, which output field), just as a careful human reading the docs would.
It never looks at the hidden, changed tools: everything it learns about them
comes from the text of their outputs and errors, the same text a learner gets,
read with the templates the environment writes it with (``labkit.messages``).

Trial phase: before each tool's first real use it calls the tool with no
arguments. That probe is short, looks the same for every tool, and its answer
carries what the docs may have got wrong: the error lists every parameter the
tool accepts now (a renamed or new parameter shows up there), a removed tool
names its successor, a disabled look-alike refuses. The next turn's reason
quotes what the probe revealed. A probe never repeats the real call, and a
tool that takes no arguments gets no probe: neither could teach anything.
With ``probe="example"`` the probe is instead the documented call with its
numbers swapped for small examples, where it has numbers: its reply shows what
the tool returns, or its error what it takes now, and its values are in the
context for the real call to copy. ``probe="example-only"`` probes no tool it
has no example for: the real call comes first and fixes what fails.

Execution phase: it makes the real calls with what it learned, sometimes slips
on purpose (by default a wrong parameter name, a wrong value format, a misread
output; see ``SLIPS``) and recovers from the error, naming the fix, then answers. A slip is marked so
that SFT keeps it as context and never trains on it: the learner should learn
the recovery, not the mistake. Given ``learner_slips``, a trained model's own
failed calls on the same task (from its evaluation episodes), it slips those
first, so its recoveries start where that model goes wrong.

``RecoverTeacher`` is the same agent without the trial phase: it calls as
documented and fixes what fails from the error text. Against ``TrialTeacher``
it separates "try first" from "fix after failing".

``GoldenTeacher`` makes the documented calls directly, with no trials: the
trajectory-centric baseline, always on the tools as documented (level 0).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from labkit.env import Action, Answer, Observation, ToolCall
from labkit.messages import (
    ACCEPTED_PARAMETERS,
    DATE_FORMATS,
    MISSING_PARAMETER,
    NOT_ONE_OF,
    NOT_UPPER_CASE,
    REMOVED,
    UNEXPECTED_PARAMETER,
    UNIT_SCALES,
    WRONG_DATE_FORMAT,
    WRONG_TYPE,
    read_parameter_spec,
    split_list,
)
from labkit.tasks import Task
from labkit.tools.base import read_path

SCALES = {suffix: factor for factor, suffix in UNIT_SCALES}  # "_milli" -> 1000: a rescaled output key says its unit
UNIT_KEY = re.compile(f"(.*)({'|'.join(map(re.escape, SCALES))})")  # (base, suffix) of a rescaled output key
LOOKALIKE_SUFFIX = r"_(beta|legacy|preview|sandbox|v\d+)"  # how staging and retired endpoints are usually named
PLACEHOLDERS = {"string": "", "integer": 0, "number": 0, "boolean": True, "array": [], "object": {}}
# An example probe's values: small numbers any such tool takes. Strings stay as documented: a made-up city or
# product ID names nothing the tool knows, so it would only earn an "unknown" error.
EXAMPLES = {"integer": 1, "number": 1, "array": [1, 2]}
PROBES = ("empty", "example", "example-only")  # example-only: a tool with no numbers to swap gets no probe
SLIPS = {  # the mistakes a teacher can make on purpose, and recover from
    "name": "a parameter under a wrong name",
    "format": "a value in the wrong shape (a list for a scalar)",
    "misread": "the previous tool's whole output passed on instead of the field the task needs",
    "missing": "a required parameter left out",
    "lookalike": "the disabled look-alike of the tool (e.g. tool_beta) called for real",
}
# The errors that say what a tool now is, whoever made the call (a missing parameter may be the caller's omission).
TOOL_FACTS = ("deprecated", "invalid_value", "unknown_parameter")
DEFAULT_SLIPS = ("name", "format", "misread")  # what the shipped teacher data was made with


def check_slips(slips) -> tuple[str, ...]:
    """``slips`` as a tuple of known kinds, or a ValueError that lists them."""
    unknown = [kind for kind in slips if kind not in SLIPS]
    if unknown:
        raise ValueError(f"unknown slip(s) {unknown}; choose from {', '.join(SLIPS)}")
    if not slips:
        raise ValueError(
            f"choose at least one slip, from {', '.join(SLIPS)} (for no slips at all, set the mistake rate to 0)"
        )
    return tuple(slips)


# ----------------------------------------------------------------------------- reading outputs


def _records_as_dict(value: Any) -> Any:
    """``{"fields": [{"name": k, "value": v}, ...]}`` back into ``{k: v}`` (keeping a unit suffix on ``value``)."""
    if not (isinstance(value, dict) and set(value) == {"fields"} and isinstance(value["fields"], list)):
        return value
    out = {}
    for record in value["fields"]:
        if not (isinstance(record, dict) and len(record) == 2 and "name" in record):
            return value
        ((key, item),) = ((k, v) for k, v in record.items() if k != "name")
        if not key.startswith("value"):
            return value
        out[f"{record['name']}{key[len('value') :]}"] = item
    return out


PAYLOAD_KEYS = ("data", "payload", "result", "results", "response", "value", "values")


def _views(value: Any) -> list[tuple[str | None, Any]]:
    """The output and everything nested in it, outermost first, each with the key it sits under."""
    queue, views = [(None, value)], []
    while queue:
        key, item = queue.pop(0)
        item = _records_as_dict(item)
        views.append((key, item))
        if isinstance(item, dict):
            queue.extend(item.items())
        elif isinstance(item, list):
            queue.extend((key, v) for v in item if isinstance(v, (dict, list)))
    return views


def _scale_of(key: str, name: str) -> int | None:
    """The factor by which ``key`` is ``name`` rescaled (``"price_milli"`` of ``"price"``: 1000), or None."""
    return SCALES.get(key[len(name) :]) if key.startswith(name) else None


def _split_unit(key: str | None) -> tuple[str | None, int | None]:
    """``"data_milli"`` -> ``("data", 1000)``; keys without a unit suffix come back unchanged."""
    match = UNIT_KEY.fullmatch(key or "")
    return (match.group(1), SCALES[match.group(2)]) if match else (key, None)


def _unscale(value: Any, factor: int) -> Any:
    if isinstance(value, list):
        return [_unscale(v, factor) for v in value]
    return round(value / factor, 6)


def _follow(view: Any, parts: list[str]) -> tuple[Any, list[str]]:
    """Walk ``parts`` into ``view``, accepting unit-suffixed keys; raises LookupError when it can't."""
    notes = []
    for part in parts:
        view = _records_as_dict(view)
        if isinstance(view, list):
            view = view[int(part)]
        elif isinstance(view, dict) and part in view:
            view = view[part]
        elif isinstance(view, dict):
            scaled = [(k, _scale_of(k, part)) for k in view if _scale_of(k, part)]
            if not scaled:
                raise LookupError(part)
            key, factor = scaled[0]
            view = _unscale(view[key], factor)
            notes.append(f"'{key}' is in 1/{factor} units, so I divide by {factor}")
        else:
            raise LookupError(part)
    return view, notes


def _whole(view: Any, return_type: str | None) -> tuple[Any, list[str]]:
    """A result read as a whole: unwrap a unit-labelled ``{"value_milli": ...}`` and check the documented type."""
    if isinstance(view, dict) and len(view) == 1:
        ((key, inner),) = view.items()
        for name in ("value", "values"):
            factor = _scale_of(key, name)
            if factor:
                return _unscale(inner, factor), [f"'{key}' is in 1/{factor} units, so I divide by {factor}"]
    expected = {"number": (int, float), "integer": (int, float), "array": list, "string": str, "boolean": bool}.get(
        return_type or ""
    )
    if expected and not isinstance(view, expected):
        raise LookupError("whole result")
    return view, []


def locate(result: Any, path: str | None, return_type: str | None = None) -> tuple[Any, str]:
    """Find the documented field in an output that may have been reshaped or rescaled.

    Returns the value and a note on how it was found; raises LookupError if it is not there.
    """
    parts = path.split(".") if path else []
    for depth, (key, view) in enumerate(_views(result)):
        base, factor = _split_unit(key)
        if not parts and depth and base not in PAYLOAD_KEYS:
            continue  # a whole result moved into an envelope sits under a payload key, not beside "status"
        try:
            if parts:
                value, notes = _follow(view, parts)
            elif factor:
                value, notes = _unscale(view, factor), [f"'{key}' is in 1/{factor} units, so I divide by {factor}"]
            else:
                value, notes = _whole(view, return_type)
        except (LookupError, IndexError, ValueError, TypeError):
            continue
        if depth:
            notes.insert(0, "the output is wrapped, so I look inside it")
        elif _records_as_dict(result) is not result:
            notes.insert(0, "the output now comes as name/value fields")
        return value, "; ".join(notes)
    raise LookupError(f"no field {path!r} in the output")


def format_answer(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = str(round(value, 4))
        return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text
    if isinstance(value, list):
        return ", ".join(format_answer(v) for v in value)
    return str(value)


# --------------------------------------------------------------------------- what a careful agent learns about one tool


@dataclass
class ToolNotes:
    """Everything learned about one tool from its outputs and errors."""

    call_name: str
    renames: dict[str, str] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    tried: bool = False

    def arguments(self, documented: dict) -> dict:
        """Documented arguments rewritten into the form the tool now accepts."""
        out = {}
        for name, value in documented.items():
            if name in self.formats and isinstance(value, str):
                value = _reformat(value, self.formats[name])
            out[self.renames.get(name, name)] = value
        return {**out, **self.extra}

    def learn(self, error: dict, sent: dict) -> str | None:
        """Update from an error; return what was learned in words, or None if the error teaches nothing."""
        message, kind = error.get("message", ""), error.get("type", "")
        if kind == "deprecated":
            removed = REMOVED.find(message)
            if removed:
                self.call_name = removed["successor"]
                return f"{removed['successor']} replaces it"
        if kind in ("unknown_parameter", "missing_parameter"):
            unexpected = UNEXPECTED_PARAMETER.find_all(message)
            missing = MISSING_PARAMETER.find_all(message)
            learned = []
            renamed_from = [u for u in unexpected if u in sent]
            for old, (new, _) in zip(renamed_from, missing):
                self.renames[self._original(old)] = new
                learned.append(f"'{old}' is now '{new}'")
            learned += [self._needs(new, spec) for new, spec in missing[len(renamed_from) :]]
            return "; ".join(learned) or None
        if kind == "invalid_value":
            date = WRONG_DATE_FORMAT.find(message)
            if date:
                name, label = date["name"], date["label"]
                self.formats[self._original(name)] = label
                return f"'{name}' takes dates as {label} now"
            upper = NOT_UPPER_CASE.find(message)
            if upper:
                self.formats[self._original(upper["name"])] = "upper"
                return f"'{upper['name']}' must be upper-case"
            choice = NOT_ONE_OF.find(message)
            if choice and choice["name"] in self.extra:
                name = choice["name"]
                self.extra[name] = _coerce(split_list(choice["choices"])[0], type(self.extra[name]).__name__)
                return f"'{name}' accepts {choice['choices']}"
        return None

    def learn_accepted(self, error: dict, documented: list[str], quote_types: bool = False) -> str | None:
        """Update from a no-argument probe's error, which lists every parameter the tool accepts now.

        A documented name missing from that list was renamed to the new name in its place (a
        rename keeps the parameter's position); a new name left over that the error says is
        required is a new parameter. Returns the finding in words, quoting the list (and, with
        ``quote_types``, each required parameter's type: ``values (array)``).
        """
        message = error.get("message", "")
        listed = ACCEPTED_PARAMETERS.find(message)
        if not listed:
            return None
        accepted = split_list(listed["names"])
        required = dict(MISSING_PARAMETER.find_all(message))
        gone = [name for name in documented if name not in accepted]
        new = [name for name in accepted if name not in documented]
        findings = []
        for old, name in zip(gone, new):
            self.renames[old] = name
            findings.append(f"'{old}' is now '{name}'")
        findings += [self._needs(name, required[name]) for name in new[len(gone) :] if name in required]
        types = {name: read_parameter_spec(spec)[0] for name, spec in required.items()} if quote_types else {}
        said = f"It accepts {', '.join(f'{name} ({types[name]})' if name in types else name for name in accepted)}"
        return f"{said}: {'; '.join(findings)}." if findings else f"{said}, as documented."

    def _needs(self, name: str, spec: str) -> str:
        """Note a new required parameter from its spec in an error
        (its first allowed value, or a placeholder of its type)."""
        kind, choices = read_parameter_spec(spec)
        self.extra[name] = _coerce(choices[0], kind) if choices else PLACEHOLDERS.get(kind, "")
        return f"it needs '{name}' now ({spec})"

    def _original(self, name: str) -> str:
        return next((old for old, new in self.renames.items() if new == name), name)


def _gist(payload: Any) -> str:
    """The part of an error message that says what to change, in a few words."""
    message = payload.get("error", {}).get("message", "") if isinstance(payload, dict) else ""
    unexpected = UNEXPECTED_PARAMETER.find_all(message)
    missing = [name for name, _ in MISSING_PARAMETER.find_all(message)]
    if unexpected and missing:
        return f"the parameter is '{missing[0]}', not '{unexpected[0]}'"
    wrong = WRONG_TYPE.find(message)
    if wrong:
        return f"'{wrong['name']}' must be {wrong['type']}"
    return message.split(". ")[0].split(": ", 1)[-1][:80] or "that call was wrong"


def _coerce(text: str, kind: str) -> Any:
    if kind in ("integer", "int"):
        return int(text)
    if kind in ("number", "float"):
        return float(text)
    return text


def _reformat(value: str, style: str) -> str:
    if style == "upper":
        return value.upper()
    try:
        _, date_format = DATE_FORMATS[style]
        return datetime.strptime(value, "%Y-%m-%d").strftime(date_format)
    except ValueError:
        return value


# ----------------------------------------------------------------------------- the teachers


PHRASES = {
    "probe": [
        "Checking what {tool} accepts now, with an empty call.",
        "{tool} may not match its docs; an empty call lists its parameters.",
        "First an empty call to {tool}, to see its parameters.",
    ],
    "probe_example": [
        "Trying {tool} on small example values first: {args}.",
        "First a test of {tool} on a toy input ({args}), to see what it accepts and returns.",
        "{tool} may not match its docs; a call on example values shows it.",
    ],
    "probe_example_ok": ["The example worked. {how}", "{tool} takes that. {how}"],
    "probe_example_error": ["The test says {learned}.", "From the test: {learned}."],
    "probe_moved": ["{learned}, so I check {tool} instead.", "The error says {learned}. Checking {tool}."],
    "lookalike": ["{twin} looks like {tool}. Checking which one works.", "Is {twin} usable? A quick check."],
    "lookalike_done": ["{twin} is disabled, so {tool}.", "{twin} is not usable."],
    "probe_ok": ["{tool} answers with no arguments. {how}", "No arguments needed. {how}"],
    "execute": [
        "Now the real call.",
        "Calling {tool} for the task.",
        "Using {tool} with what I learned.",
        "The actual call: {args}.",
    ],
    "recover": ["The error says {learned}. Fixing it.", "My mistake: {learned}.", "Right, {learned}. Again."],
    "misread": ["I passed the whole result, not its '{field}'. Fixing.", "That was the full output; I need '{field}'."],
}


class TrialTeacher:
    """A scripted agent that tries each tool before using it and recovers from errors by reading them."""

    name = "teacher:trial"
    tries_first = True

    def __init__(
        self,
        mistake_rate: float = 0.3,
        seed: int = 0,
        lookalike_rate: float = 0.5,
        slips: tuple[str, ...] = DEFAULT_SLIPS,
        quote_types: bool = False,
        probe: str = "empty",
        learner_slips: dict[str, list[tuple[str, dict]]] | None = None,
    ):
        if probe not in PROBES:
            raise ValueError(f"probe must be one of {', '.join(PROBES)}, got {probe!r}")
        self.mistake_rate = mistake_rate
        self.quote_types = quote_types
        self.probe = probe
        self.lookalike_rate = lookalike_rate
        self.seed = seed
        self.slips = check_slips(slips)
        self.learner_slips = learner_slips or {}

    # -- Policy interface

    def reset(self, task: Task, docs: list[dict]) -> None:
        if not task.calls:
            raise ValueError(f"task {task.id} has no gold path ('calls'); the scripted teachers need one")
        self.task, self.docs = task, {d["function"]["name"]: d["function"] for d in docs}
        self.rng = random.Random(f"trial-teacher:{self.seed}:{task.id}")
        self.notes = {call.name: ToolNotes(call.name) for call in task.calls}
        self.values: list[Any] = []
        self.carry = ""  # what the last turn learned, said at the start of the next thought
        self.mistakes_left = list(self.learner_slips.get(task.id, []))
        self._actions = self._script()

    def act(self, observation: Observation | None) -> Action:
        self.last = observation
        return next(self._actions)

    # -- the script, as a generator that sees each observation through self.last

    def _with_carry(self, thought: str) -> str:
        text, self.carry = f"{self.carry} {thought}".strip(), ""
        return text

    def _say(self, key: str, **slots: Any) -> str:
        return self.rng.choice(PHRASES[key]).format(**slots).replace("  ", " ").strip()

    def _result(self) -> tuple[bool, Any]:
        payload = json.loads(self.last.content) if not self.last.truncated else self.last.content
        return self.last.ok, payload

    def _script(self):
        for hop, call in enumerate(self.task.calls):
            notes = self.notes[call.name]
            documented = self._documented_arguments(hop)
            if self.tries_first and not notes.tried:
                yield from self._trial(call.name, notes, documented)
            yield from self._execute(hop, call, notes, documented)
        yield Answer(format_answer(self.values[-1]), "")

    def _trial(self, tool: str, notes: ToolNotes, documented: dict):
        notes.tried = True
        twins = self._twins(tool)
        if twins and self.rng.random() < self.lookalike_rate:
            twin = self.rng.choice(twins)
            yield ToolCall(twin, {}, "trial", self._say("lookalike", twin=twin, tool=tool))
            if not self.last.ok:
                self.carry = self._say("lookalike_done", twin=twin, tool=tool)
        if not documented:
            return  # the real call is the empty call: a probe would only repeat it
        example = self._example_arguments(tool, documented) if self.probe != "empty" else {}
        if not example and self.probe == "example-only":
            return  # its example would be the real call, which finds the same as a probe
        yield from self._probe(tool, notes, example)

    def _probe(self, tool: str, notes: ToolNotes, example: dict):
        """Call the tool with no arguments, or on ``example`` values: the reply shows what it returns, the error
        what it takes now (an example's values are there to copy for the real call)."""
        opening, answered = ("probe_example", "probe_example_ok") if example else ("probe", "probe_ok")
        thought = self._with_carry(self._say(opening, tool=tool, args=_brief(example)))
        for _ in range(4):  # a removed tool names its successor, which is probed in turn
            sent = notes.arguments(example) if example else {}
            yield ToolCall(notes.call_name, sent, "trial", thought)
            ok, payload = self._result()
            if ok:
                self.carry = self._say(answered, tool=notes.call_name, how=self._reading_note(tool, payload))
                return
            error = payload.get("error", {}) if isinstance(payload, dict) else {}
            moved = error.get("type") == "deprecated"
            if example:
                learned = notes.learn(error, sent)
                if not moved or not learned:
                    self.carry = self._say("probe_example_error", learned=learned) if learned else ""
                    return
            elif not moved:
                accepted = list(self._documented_parameters(tool).get("properties", {}))
                self.carry = notes.learn_accepted(error, accepted, self.quote_types) or ""
                return
            else:
                learned = notes.learn(error, {})
            thought = self._say("probe_moved", learned=learned, tool=notes.call_name)

    def _example_arguments(self, tool: str, documented: dict) -> dict:
        """The documented call with its numbers and number lists swapped for ``EXAMPLES``; {} when nothing is
        swapped, since the probe would then be the real call."""
        properties = self._documented_parameters(tool).get("properties", {})
        swapped = {}
        for name in documented:
            spec = properties.get(name, {})
            kind = spec.get("type")
            if kind in EXAMPLES and "enum" not in spec and spec.get("items", {}).get("type") != "string":
                swapped[name] = EXAMPLES[kind]
        if not swapped or all(_same(documented[k], v) for k, v in swapped.items()):
            return {}
        return {**documented, **swapped}

    def _reading_note(self, tool: str, payload: Any) -> str:
        call = next(c for c in self.task.calls if c.name == tool)
        try:
            _, how = locate(payload, call.read, self._return_type(tool))
        except LookupError:
            return ""
        return f"Note: {how}." if how else "Output as documented."

    def _execute(self, hop: int, call, notes: ToolNotes, documented: dict):
        thought = self._with_carry(self._say("execute", tool=notes.call_name, args=_brief(documented)))
        slipping = self.rng.random() < self.mistake_rate
        learners = self._learner_slips(call.name, notes)
        slips = learners or [slip for slip in [self._slip(hop, documented) if slipping else None] if slip]
        found = []  # what the learner's slips revealed about the tool
        for tool, sent, recovery in slips:
            # Shown, not taught: trained on, a slip teaches the learner to make it (SFT imitates every trained turn).
            yield ToolCall(tool, sent, "execution", thought, slip=True)
            if not self.last.ok:
                _, payload = self._result()
                # A learner's slip can meet a real change of the tool (a new value format): learn it, as a failed
                # real call would teach, so the fix names it even after later slips. A missing parameter is the
                # learner's omission here (the probe already listed what the tool requires).
                error = payload.get("error", {}) if learners and isinstance(payload, dict) else {}
                found += [notes.learn(error, sent)] if error.get("type") in TOOL_FACTS else []
                learned = "; ".join(filter(None, found)) or _gist(payload)
                thought = recovery or self._say("recover", learned=learned, tool=notes.call_name)
        for _ in range(6):
            sent = notes.arguments(documented)
            yield ToolCall(notes.call_name, sent, "execution", thought)
            ok, payload = self._result()
            if ok:
                try:
                    value, _ = locate(payload, call.read, self._return_type(call.name))
                except LookupError:
                    value = None
                self.values.append(value)
                return
            learned = notes.learn(payload.get("error", {}), sent) if isinstance(payload, dict) else None
            if not learned:
                break
            thought = self._say("recover", learned=learned, tool=notes.call_name)
        self.values.append(None)

    # -- helpers

    def _return_type(self, tool: str) -> str | None:
        return self.docs.get(tool, {}).get("return", {}).get("type")

    def _documented_arguments(self, hop: int) -> dict:
        """The hop's documented arguments, with values that came from the previous hop taken from what was read."""
        gold = dict(self.task.calls[hop].arguments)
        if hop == 0 or not self.values:
            return gold
        previous = self.values[-1]
        return {k: (previous if _same(v, previous) else v) for k, v in gold.items()}

    def _documented_parameters(self, tool: str) -> dict:
        """A tool's documented ``parameters`` schema (its ``properties`` and ``required`` names)."""
        return self.docs.get(tool, {}).get("parameters", {})

    def _twins(self, tool: str) -> list[str]:
        """The documented look-alikes of a tool (``tool_beta``, ``tool_v2``, ...)."""
        return [name for name in self.docs if re.fullmatch(re.escape(tool) + LOOKALIKE_SUFFIX, name)]

    def _learner_slips(self, tool: str, notes: ToolNotes) -> list[tuple[str, dict, None]]:
        """The learner's own failed calls of this hop's tool, in its order, where ``learner_slips`` has the task.

        A trained model's mistakes are not the teacher's (a botched fix, an invented parameter or ID, a scalar for
        an array): slipped one after another, they rebuild the state it got itself into, and the teacher's
        recovery from there is what its data never showed it."""
        mine = [m for m in self.mistakes_left if m[0] in (tool, notes.call_name)]
        self.mistakes_left = [m for m in self.mistakes_left if m not in mine]
        return [(name, arguments, None) for name, arguments in mine]

    def _slip(self, hop: int, documented: dict) -> tuple[str, dict, str | None] | None:
        """A realistic mistake (one of ``self.slips``) that the tool is sure to reject: the tool called, its arguments,
        and (for misreads and look-alikes) the words of the recovery."""
        tool, notes = self.task.calls[hop].name, self.notes[self.task.calls[hop].name]
        sent = notes.arguments(documented)
        required = [notes.renames.get(name, name) for name in self._documented_parameters(tool).get("required", [])]
        # Leaving out a tool's only parameter would repeat its probe, the empty call; an optional one is no mistake.
        droppable = sorted(key for key in sent if key in required) if len(sent) > 1 else []
        twins = self._twins(tool)
        possible = {"misread": hop > 0 and self.values, "lookalike": twins, "missing": droppable}
        kind = self.rng.choice([k for k in self.slips if possible.get(k, True)] or [None])
        if kind is None:
            return None
        if kind == "lookalike":
            twin = self.rng.choice(twins)
            return twin, sent, self._say("lookalike_done", twin=twin, tool=notes.call_name)
        if kind == "misread":
            bound = [k for k, v in documented.items() if _same(v, self.values[-1])]
            if bound:
                field_name = self.task.calls[hop - 1].read or "value"
                wrong = {**sent, bound[0]: {"result": documented[bound[0]], "note": "full output"}}
                return notes.call_name, wrong, self._say("misread", field=field_name)
            kind = "name"
        if not sent:
            return None
        key = self.rng.choice(droppable if kind == "missing" else sorted(sent))
        if kind == "name":
            wrong = {
                (f"{key}_name" if not key.endswith("_name") else f"the_{key}"): sent[key],
                **{k: v for k, v in sent.items() if k != key},
            }
        elif kind == "missing":
            wrong = {k: v for k, v in sent.items() if k != key}
        else:
            value = sent[key]
            wrong = {**sent, key: [value] if not isinstance(value, list) else {"items": value}}
        return notes.call_name, wrong, None


class RecoverTeacher(TrialTeacher):
    """The trial teacher without its trial phase: it calls as documented and fixes what fails from the error."""

    name = "teacher:recover"
    tries_first = False


class GoldenTeacher:
    """The trajectory-centric baseline: the documented calls, made directly, with no trials."""

    name = "teacher:golden"

    def reset(self, task: Task, docs: list[dict]) -> None:
        if not task.calls:
            raise ValueError(f"task {task.id} has no gold path ('calls'); the scripted teachers need one")
        self.task, self.hop, self.value = task, 0, None

    def act(self, observation: Observation | None) -> Action:
        if observation is not None:
            try:
                self.value = read_path(json.loads(observation.content), self.task.calls[self.hop - 1].read)
            except (KeyError, IndexError, TypeError, ValueError):
                self.value = None
        if self.hop == len(self.task.calls):
            return Answer(format_answer(self.value))
        call = self.task.calls[self.hop]
        self.hop += 1
        arguments = {k: (self.value if self.hop > 1 and _same(v, self.value) else v) for k, v in call.arguments.items()}
        return ToolCall(call.name, arguments, "execution", f"Calling {call.name}.")

    @staticmethod
    def documented(task: Task) -> Task:
        """The task on the tools as documented: golden data never meets a changed tool."""
        return replace(task, level=0)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().casefold() == b.strip().casefold()
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= 1e-6 * max(1.0, abs(a))
    return a == b


def _brief(arguments: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())[:80]
