"""What an episode really runs: live tools with their true signatures, and the docs the agent sees.

A ``LiveTool`` validates a call against its *real* parameters the way a strict
API does, then runs. A ``ToolSet`` pairs the live tools with the documentation
shown to the agent, which after evolution is the *old* documentation. The gap
between the two is what trials are for.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterable

from labkit.messages import NOT_ONE_OF, WRONG_TYPE, join_list, parameter_spec, signature_error
from labkit.tools.registry import Catalog, Tool


class ErrorKind(str, Enum):
    """Every way a call can fail; each becomes a typed error observation."""

    UNKNOWN_TOOL = "unknown_tool"
    MALFORMED_ARGUMENTS = "malformed_arguments"
    UNKNOWN_PARAMETER = "unknown_parameter"
    MISSING_PARAMETER = "missing_parameter"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    DEPRECATED = "deprecated"
    UNAVAILABLE = "unavailable"
    TOOL_EXCEPTION = "tool_exception"
    TIMEOUT = "timeout"
    BUDGET_EXHAUSTED = "budget_exhausted"
    BAD_FORMAT = "bad_format"


class ToolCallError(Exception):
    """A call the API refuses, with the plain message a real API would send back."""

    def __init__(self, kind: ErrorKind, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict}


@dataclass(frozen=True)
class Param:
    """One parameter of a tool's real signature."""

    name: str
    type: str = "string"
    required: bool = True
    description: str = ""
    enum: tuple | None = None
    items: str | None = None

    def to_schema(self) -> dict:
        schema: dict[str, Any] = {"type": self.type}
        if self.items:
            schema["items"] = {"type": self.items}
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        if self.description:
            schema["description"] = self.description
        return schema


def params_from_schema(schema: dict) -> list[Param]:
    parameters = schema["function"].get("parameters", {})
    required = set(parameters.get("required", []))
    params = []
    for name, spec in parameters.get("properties", {}).items():
        kind = spec.get("type", "string")
        enum = spec.get("enum")
        params.append(
            Param(
                name=name,
                type=kind if isinstance(kind, str) else kind[0],
                required=name in required,
                description=spec.get("description", ""),
                enum=tuple(enum) if enum is not None else None,
                items=spec.get("items", {}).get("type") if isinstance(spec.get("items"), dict) else None,
            )
        )
    return params


def _type_name(value: Any) -> str:
    for name, kinds in (
        ("boolean", bool),
        ("integer", int),
        ("number", float),
        ("string", str),
        ("array", list),
        ("object", dict),
    ):
        if isinstance(value, kinds):
            return name
    return "null" if value is None else type(value).__name__


def _has_type(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    expected = JSON_TYPES.get(kind)
    return expected is None or isinstance(value, expected)


def check_arguments(tool_name: str, params: list[Param], arguments: Any) -> dict:
    """Validate a call like a strict JSON-schema API; return the kwargs or raise ``ToolCallError``."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError) as exc:  # bad JSON, too deep, or a number of over 4,300 digits
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc).split(";")[0]
            raise ToolCallError(
                ErrorKind.MALFORMED_ARGUMENTS, f"arguments for '{tool_name}' are not valid JSON: {reason}"
            ) from None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ToolCallError(
            ErrorKind.MALFORMED_ARGUMENTS,
            f"arguments for '{tool_name}' must be a JSON object of "
            f"parameter names to values, got {_type_name(arguments)}",
        )
    by_name = {p.name: p for p in params}
    unknown = [str(k) for k in arguments if k not in by_name]
    missing = [p for p in params if p.required and p.name not in arguments]
    if unknown or missing:
        kind = ErrorKind.UNKNOWN_PARAMETER if unknown else ErrorKind.MISSING_PARAMETER
        missing_specs = [(p.name, parameter_spec(p.type, p.enum)) for p in missing]
        raise ToolCallError(kind, signature_error(tool_name, unknown, missing_specs, [p.name for p in params]))
    for name, value in arguments.items():
        param = by_name[name]
        if not _has_type(value, param.type):
            sent = json.dumps(value, default=str)[:40]
            message = WRONG_TYPE.format(tool=tool_name, name=name, type=param.type, got=_type_name(value), value=sent)
            raise ToolCallError(ErrorKind.WRONG_TYPE, message)
        if param.type == "array" and param.items and not all(_has_type(v, param.items) for v in value):
            raise ToolCallError(
                ErrorKind.WRONG_TYPE, f"{tool_name}: parameter '{name}' must be an array of {param.items}"
            )
        if param.enum is not None and _fold(value) not in {_fold(v) for v in param.enum}:
            message = NOT_ONE_OF.format(tool=tool_name, name=name, choices=join_list(param.enum), value=value)
            raise ToolCallError(ErrorKind.INVALID_VALUE, message)
    return dict(arguments)


def _fold(value: Any) -> Any:
    return value.strip().casefold() if isinstance(value, str) else value


@dataclass
class LiveTool:
    """A tool as deployed: a real signature and a function of validated keyword arguments."""

    name: str
    params: list[Param]
    run: Callable[[dict], Any]
    description: str = ""
    family: str = ""
    refusal: ToolCallError | None = None  # set on endpoints that answer every call with one error

    def call(self, arguments: Any) -> Any:
        # A disabled or removed endpoint refuses before it looks at the arguments, like a real 403 or 410.
        if self.refusal:
            raise ToolCallError(self.refusal.kind, self.refusal.message)
        return self.run(check_arguments(self.name, self.params, arguments))

    def real_schema(self) -> dict:
        """The signature the tool really has now, in the same JSON-schema shape as its docs."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": {p.name: p.to_schema() for p in self.params},
                    "required": [p.name for p in self.params if p.required],
                },
            },
        }


def live_tool(tool: Tool) -> LiveTool:
    func = tool.func
    return LiveTool(
        name=tool.name,
        params=params_from_schema(tool.schema),
        run=lambda kwargs: func(**kwargs),
        description=tool.description,
        family=tool.family,
    )


@dataclass(frozen=True)
class Change:
    """One evolution applied to a tool, described for people (the viewer, the notebooks)."""

    operator: str
    tool: str
    detail: str


@dataclass
class ToolSet:
    """The live tools of one episode and the documentation the agent is shown."""

    tools: dict[str, LiveTool]
    docs: list[dict]
    changes: list[Change] = field(default_factory=list)
    level: int = 0
    seed: int = 0

    def doc(self, name: str) -> dict | None:
        return next((d for d in self.docs if d["function"]["name"] == name), None)

    def copy(self) -> "ToolSet":
        return ToolSet(dict(self.tools), copy.deepcopy(self.docs), list(self.changes), self.level, self.seed)


def base_toolset(catalog: Catalog, names: Iterable[str]) -> ToolSet:
    """The tools exactly as documented: what level 0 of evolution looks like."""
    names = list(dict.fromkeys(names))
    missing = [n for n in names if n not in catalog]
    if missing:
        raise KeyError(f"unknown tool(s) {missing}; load the module that defines them with --tools-module")
    return ToolSet(
        tools={n: live_tool(catalog[n]) for n in names},
        docs=[copy.deepcopy(catalog[n].schema) for n in names],
    )
