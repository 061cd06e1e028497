"""Unfamiliarity operators: turn documented tools into changed ones while the agent keeps the old docs.

Every operator is deterministic per seed, and the errors a changed tool returns
say what was wrong with a call the way a real API does (an unexpected
parameter, a bad format, a moved endpoint), so a careful trial can find the fix.
They never contain the task's answer.

Levels grade how unfamiliar a tool is:

| level | what changes |
|-------|--------------|
| 0 | nothing: the tool behaves as documented |
| 1 | one interface change: a renamed parameter, a deprecation with a redirect, look-alike distractors, or missing/misleading docs |
| 2 | one behaviour change: a new value format, new output units, a new output shape, or a new required parameter |
| 3 | one behaviour change and one interface change |
| 4 | two behaviour changes and one interface change |

``change_output_units`` and ``add_required_parameter`` are kept for evaluation
only: training never meets them, so the evolved split can measure transfer to
kinds of change the agent was not taught.
"""  # noqa: E501 (a Markdown table row, line 13, cannot be wrapped)

from __future__ import annotations

import random
import re
from dataclasses import replace
from datetime import date, datetime
from typing import Any, Callable

from labkit.messages import DATE_FORMATS, NOT_UPPER_CASE, REMOVED, UNIT_SCALES, WRONG_DATE_FORMAT
from labkit.toolset import Change, ErrorKind, LiveTool, Param, ToolCallError, ToolSet

LEVELS = {0: (0, 0), 1: (0, 1), 2: (1, 0), 3: (1, 1), 4: (2, 1)}  # level -> (behaviour, interface) changes
LEVEL_DESCRIPTIONS = {
    0: "as documented",
    1: "one interface change (renamed parameter, redirect, look-alikes, or bad docs)",
    2: "one behaviour change (value format, output units or shape, or a new required parameter)",
    3: "one behaviour change and one interface change",
    4: "two behaviour changes and one interface change",
}

SYNONYMS = {
    "city": ["location", "place", "city_name"],
    "country": ["country_name", "nation", "territory"],
    "text": ["input_text", "content", "body"],
    "value": ["quantity", "amount_value", "magnitude"],
    "amount": ["sum", "value", "total"],
    "date": ["day", "on_date", "calendar_date"],
    "days": ["num_days", "day_count", "offset_days"],
    "from_unit": ["source_unit", "unit_in", "src"],
    "to_unit": ["target_unit", "unit_out", "dst"],
    "base": ["from_currency", "source_currency", "base_code"],
    "target": ["to_currency", "target_currency", "quote"],
    "unit": ["units", "scale", "measure"],
    "values": ["numbers", "data", "series"],
    "year": ["yr", "calendar_year", "year_number"],
}
VERB_SWAPS = {"get_": "fetch_", "find_": "lookup_", "list_": "enumerate_", "convert_": "transform_", "count_": "tally_"}
NEW_REQUIRED = [
    Param("api_version", "integer", True, "", (2, 3)),
    Param("region", "string", True, "", ("eu", "us", "apac")),
    Param("response_format", "string", True, "", ("json", "compact")),
]


def _wrap(
    tool: LiveTool,
    inbound: Callable[[dict], dict] | None = None,
    outbound: Callable[[Any], Any] | None = None,
    **changes,
) -> LiveTool:
    """A new live tool whose calls go through ``inbound`` before and ``outbound`` after the old one."""
    inner = tool.run

    def run(kwargs: dict) -> Any:
        result = inner(inbound(kwargs) if inbound else kwargs)
        return outbound(result) if outbound else result

    return replace(tool, run=run, **changes)


# ----------------------------------------------------------------------------- interface changes


def rename_parameter(toolset: ToolSet, name: str, rng: random.Random) -> Change | None:
    tool = toolset.tools[name]
    candidates = [p for p in tool.params if p.required] or tool.params
    if not candidates:
        return None
    old = rng.choice(candidates)
    taken = {p.name for p in tool.params}
    options = [s for s in SYNONYMS.get(old.name, []) if s not in taken] or [f"{old.name}_value"]
    new = rng.choice(options)
    params = [replace(p, name=new) if p.name == old.name else p for p in tool.params]

    inner = tool.run

    def run(kwargs: dict) -> Any:
        kwargs = dict(kwargs)
        if new in kwargs:
            kwargs[old.name] = kwargs.pop(new)
        try:
            return inner(kwargs)
        except ToolCallError as exc:  # an API names its parameters as callers now know them
            raise ToolCallError(exc.kind, exc.message.replace(f"'{old.name}'", f"'{new}'")) from None

    toolset.tools[name] = replace(tool, run=run, params=params)
    return Change("rename_parameter", name, f"parameter '{old.name}' is now called '{new}'")


def deprecate_with_redirect(toolset: ToolSet, name: str, rng: random.Random) -> Change | None:
    prefix = next((p for p in VERB_SWAPS if name.startswith(p)), None)
    successor = VERB_SWAPS[prefix] + name[len(prefix) :] if prefix and rng.random() < 0.5 else f"{name}_v2"
    if successor in toolset.tools:
        return None
    sunset = date(2025, rng.randint(1, 12), rng.randint(1, 28)).isoformat()

    removed = ToolCallError(ErrorKind.DEPRECATED, REMOVED.format(tool=name, date=sunset, successor=successor))
    toolset.tools[successor] = replace(toolset.tools[name], name=successor)
    toolset.tools[name] = replace(toolset.tools[name], refusal=removed)
    return Change("deprecate_with_redirect", name, f"'{name}' is removed; its replacement is '{successor}'")


def add_distractors(toolset: ToolSet, name: str, rng: random.Random) -> Change | None:
    """Look-alike tools with the same docs that fail like disabled endpoints do."""
    doc = toolset.doc(name)
    if doc is None:
        return None
    suffixes = rng.sample(["_beta", "_legacy", "_v0", "_preview", "_sandbox"], 2)
    added = []
    for suffix in suffixes:
        twin = name + suffix
        toolset.tools[twin] = replace(
            toolset.tools[name],
            name=twin,
            refusal=ToolCallError(ErrorKind.UNAVAILABLE, f"'{twin}' is not enabled for this account (HTTP 403)."),
        )
        twin_doc = {"type": "function", "function": {**doc["function"], "name": twin}}
        toolset.docs.insert(rng.randrange(len(toolset.docs) + 1), twin_doc)
        added.append(twin)
    return Change("add_distractors", name, f"look-alike tools {', '.join(added)} are offered but disabled")


def degrade_docs(toolset: ToolSet, name: str, rng: random.Random) -> Change | None:
    doc = toolset.doc(name)
    if doc is None:
        return None
    function = doc["function"]
    properties = function.get("parameters", {}).get("properties", {})
    if rng.random() < 0.5 or len(properties) < 2:
        function["description"] = ""
        for spec in properties.values():
            spec.pop("description", None)
        return Change("degrade_docs", name, "the documentation lost every description")
    # Misleading: each parameter is described as if it were the next one.
    keys = list(properties)
    texts = [properties[k].get("description", "") for k in keys]
    for key, text in zip(keys, texts[1:] + texts[:1]):
        properties[key]["description"] = text
    return Change("degrade_docs", name, "the parameter descriptions are attached to the wrong parameters")


# ----------------------------------------------------------------------------- behaviour changes


def _format_kind(param: Param) -> str | None:
    if param.type != "string":
        return None
    text = param.description
    if "YYYY-MM-DD" in text:
        return "date"
    if param.enum is not None or re.search(r"\b(name|code|ID)\b", text, re.IGNORECASE):
        return "identifier"
    return None


def change_value_format(toolset: ToolSet, name: str, rng: random.Random) -> Change | None:
    tool = toolset.tools[name]
    candidates = [p for p in tool.params if _format_kind(p)]
    if not candidates:
        return None
    param = rng.choice(candidates)
    if _format_kind(param) == "date":
        label = rng.choice(sorted(DATE_FORMATS))
        pattern, strptime = DATE_FORMATS[label]

        def convert(value: str) -> str:
            if not re.match(pattern, value.strip()):
                raise ToolCallError(
                    ErrorKind.INVALID_VALUE, WRONG_DATE_FORMAT.format(value=value, name=param.name, label=label)
                )
            try:
                return datetime.strptime(value.strip(), strptime).date().isoformat()
            except ValueError:
                raise ToolCallError(ErrorKind.INVALID_VALUE, f"{value!r} is not a real date")

        rule = f"dates as {label}"
    else:

        def convert(value: str) -> str:
            if value != value.upper():
                raise ToolCallError(ErrorKind.INVALID_VALUE, NOT_UPPER_CASE.format(value=value, name=param.name))
            return value

        rule = "upper-case values only"

    def inbound(kwargs: dict) -> dict:
        if param.name in kwargs:
            kwargs = {**kwargs, param.name: convert(kwargs[param.name])}
        return kwargs

    enum = tuple(str(v).upper() for v in param.enum) if param.enum else None
    changed = replace(param, description=f"{param.description} Now takes {rule}.".strip(), enum=enum)
    toolset.tools[name] = _wrap(tool, inbound, params=[changed if p.name == param.name else p for p in tool.params])
    return Change("change_value_format", name, f"parameter '{param.name}' now takes {rule}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric(value: Any) -> bool:
    """A number, or a non-empty list of numbers: the values whose unit changes."""
    return _is_number(value) or (isinstance(value, list) and bool(value) and all(map(_is_number, value)))


def _scaled(value: Any, factor: int) -> Any:
    return [round(v * factor, 6) for v in value] if isinstance(value, list) else round(value * factor, 6)


def _scale_numbers(value: Any, factor: int, suffix: str) -> Any:
    """Scale every number and list of numbers, renaming its key so the new unit is visible."""
    if isinstance(value, dict):
        return {
            (f"{key}{suffix}" if _numeric(item) else key): (
                _scaled(item, factor) if _numeric(item) else _scale_numbers(item, factor, suffix)
            )
            for key, item in value.items()
        }
    if _numeric(value):
        return {f"{'values' if isinstance(value, list) else 'value'}{suffix}": _scaled(value, factor)}
    if isinstance(value, list):
        return [_scale_numbers(item, factor, suffix) for item in value]
    return value


def _returns(toolset: ToolSet, name: str) -> str | None:
    doc = toolset.doc(name)
    return doc["function"].get("return", {}).get("type") if doc else None


def change_output_units(toolset: ToolSet, name: str, rng: random.Random) -> Change | None:
    if _returns(toolset, name) in ("string", "boolean"):
        return None
    factor, suffix = rng.choice(UNIT_SCALES)
    change = Change(
        "change_output_units", name, f"numbers in the output are now scaled by {factor} (keys end in '{suffix}')"
    )
    tool = toolset.tools[name]
    toolset.tools[name] = _wrap(
        tool,
        outbound=lambda result: _scale_numbers(result, factor, suffix),
        description=f"{tool.description} [{change.detail}]",
    )
    return change


def change_output_shape(toolset: ToolSet, name: str, rng: random.Random) -> Change | None:
    variant = rng.choice(["envelope", "nested", "records"])
    request_id = f"req-{rng.randrange(16**6):06x}"

    def reshape(result: Any) -> Any:
        if variant == "records" and isinstance(result, dict):
            return {"fields": [{"name": k, "value": v} for k, v in result.items()]}
        if variant == "nested":
            return {"response": {"payload": result}, "request_id": request_id}
        return {"status": "ok", "data": result}

    change = Change("change_output_shape", name, f"the output is now wrapped ({variant} shape)")
    tool = toolset.tools[name]
    toolset.tools[name] = _wrap(tool, outbound=reshape, description=f"{tool.description} [{change.detail}]")
    return change


def add_required_parameter(toolset: ToolSet, name: str, rng: random.Random) -> Change | None:
    tool = toolset.tools[name]
    options = [p for p in NEW_REQUIRED if p.name not in {q.name for q in tool.params}]
    if not options:
        return None
    extra = rng.choice(options)

    def inbound(kwargs: dict) -> dict:
        return {k: v for k, v in kwargs.items() if k != extra.name}

    toolset.tools[name] = _wrap(tool, inbound, params=[*tool.params, extra])
    return Change(
        "add_required_parameter",
        name,
        f"new required parameter '{extra.name}' (one of {', '.join(map(str, extra.enum))})",
    )


INTERFACE_OPERATORS = {
    op.__name__: op for op in (rename_parameter, deprecate_with_redirect, add_distractors, degrade_docs)
}
BEHAVIOUR_OPERATORS = {
    op.__name__: op for op in (change_value_format, change_output_shape, change_output_units, add_required_parameter)
}
OPERATORS = {**BEHAVIOUR_OPERATORS, **INTERFACE_OPERATORS}
EVAL_ONLY_OPERATORS = ("change_output_units", "add_required_parameter")
TRAIN_OPERATORS = tuple(name for name in OPERATORS if name not in EVAL_ONLY_OPERATORS)
# Operators that replace or shadow the tool's name run last, so the successor carries the other changes.
_RUN_LAST = ("add_distractors", "deprecate_with_redirect")


def evolve_tool(
    toolset: ToolSet, name: str, level: int, seed: int, operators: tuple[str, ...] | None = None
) -> list[Change]:
    """Apply ``level``'s changes to one tool of ``toolset`` in place, deterministically per seed.

    When an operator does not apply to the tool (no date parameter to reformat,
    say), another operator of the same kind takes its place.
    """
    if level not in LEVELS:
        raise ValueError(f"evolution level must be one of {sorted(LEVELS)}, got {level!r}")
    allowed = set(operators or OPERATORS)
    unknown = allowed - set(OPERATORS)
    if unknown:
        raise ValueError(f"unknown evolution operators {sorted(unknown)}; choose from {sorted(OPERATORS)}")
    rng = random.Random(f"evolve:{seed}:{name}:{level}")
    n_behaviour, n_interface = LEVELS[level]
    plan = []
    for group, count in ((BEHAVIOUR_OPERATORS, n_behaviour), (INTERFACE_OPERATORS, n_interface)):
        pool = [op for op in group if op in allowed]
        rng.shuffle(pool)
        plan.append((pool, count))
    changes: list[Change] = []
    deferred: list[str] = []
    for pool, count in plan:
        for op_name in pool:
            if count == 0:
                break
            if op_name in _RUN_LAST:
                deferred.append(op_name)
                count -= 1
                continue
            change = OPERATORS[op_name](toolset, name, rng)
            if change:
                changes.append(change)
                count -= 1
    for op_name in sorted(deferred, key=_RUN_LAST.index):
        change = OPERATORS[op_name](toolset, name, rng)
        if change:
            changes.append(change)
    toolset.changes.extend(changes)
    return changes


def evolve_toolset(
    toolset: ToolSet, names: list[str], level: int, seed: int, operators: tuple[str, ...] | None = None
) -> ToolSet:
    """A changed copy of ``toolset`` in which each named tool is evolved to ``level``."""
    evolved = toolset.copy()
    evolved.level, evolved.seed = level, seed
    for name in names:
        evolve_tool(evolved, name, level, seed, operators)
    return evolved
