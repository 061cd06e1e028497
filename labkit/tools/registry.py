"""The tool catalog: built-in families plus any module of functions a user brings.

Schemas come from ``transformers.utils.get_json_schema``, the convention TRL,
transformers and smolagents share, so any typed, Google-documented function
drops in unchanged.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

from transformers.utils import get_json_schema
from transformers.utils.chat_template_utils import DocstringParsingException, TypeHintParsingException

from labkit.tools.base import TaskTemplate

BUILTIN_FAMILIES = ("weather", "units", "currency", "calendar", "geography", "text", "stats", "store", "library")
# Never used for training: they measure transfer to tool families the agent has not met.
UNSEEN_FAMILIES = ("stats", "store", "library")
SEEN_FAMILIES = tuple(f for f in BUILTIN_FAMILIES if f not in UNSEEN_FAMILIES)


class ToolModuleError(ValueError):
    """A user's tools module could not be loaded or one of its functions cannot be a tool."""


@dataclass(frozen=True)
class Tool:
    """A callable tool and the JSON schema that documents it."""

    name: str
    family: str
    func: Callable[..., Any]
    schema: dict

    @property
    def description(self) -> str:
        return self.schema["function"].get("description", "")

    @property
    def parameters(self) -> dict:
        return self.schema["function"]["parameters"]


def make_tool(func: Callable[..., Any], family: str) -> Tool:
    """Wrap one function as a tool, with a message that says how to fix a bad docstring."""
    try:
        schema = get_json_schema(func)
    except (DocstringParsingException, TypeHintParsingException) as exc:
        raise ToolModuleError(
            f"{func.__module__}.{func.__name__} cannot be a tool: {exc} "
            "Give every parameter a type hint and a line under 'Args:' in a Google-style docstring."
        ) from exc
    return Tool(name=func.__name__, family=family, func=func, schema=schema)


def _module_functions(module: ModuleType) -> list[Callable[..., Any]]:
    if hasattr(module, "TOOLS"):
        return list(module.TOOLS)
    return [
        obj
        for name, obj in vars(module).items()
        if inspect.isfunction(obj) and obj.__module__ == module.__name__ and not name.startswith("_")
    ]


# The `--tools-module` of every command that takes a user's tools (labkit.cli).
TOOLS_MODULE_OPTION = {"flag": "--tools-module", "help": "a .py file or module of your own tools (repeatable)"}
IMPORT_TIMEOUT_S = 60.0  # a tools module defines functions; importing one that works (or waits) longer is refused


def import_tools_module(spec: str | Path | ModuleType) -> ModuleType:
    """Import a module given as an object, a dotted name, or a path to a ``.py`` file."""
    if isinstance(spec, ModuleType):
        return spec
    text = str(spec)
    if text.endswith(".py") or Path(text).is_file():
        path = Path(text).resolve()
        if not path.is_file():
            raise ToolModuleError(f"tools module {path} does not exist; pass a .py file or an importable module name")
        name = f"labkit_user_tools.{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            _within_timeout(str(path), lambda: module_spec.loader.exec_module(module))
        except ToolModuleError:
            del sys.modules[name]
            raise
        return module
    return _within_timeout(repr(text), lambda: importlib.import_module(text))


def _within_timeout(what: str, load: Callable[[], Any]) -> Any:
    """Run an import on its own thread, so that one that hangs or calls sys.exit() becomes a ToolModuleError.

    The user's Ctrl-C still stops it: it arrives on the main thread, which only waits here.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = load()
        except BaseException as exc:  # noqa: BLE001 (the module's own sys.exit() or KeyboardInterrupt included)
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True, name="labkit-import")
    worker.start()
    worker.join(IMPORT_TIMEOUT_S)
    if worker.is_alive():
        raise ToolModuleError(
            f"importing tools module {what} did not finish within {IMPORT_TIMEOUT_S:g} s; "
            "a tools module should define functions, not work or wait when imported"
        )
    error = outcome.get("error")
    if isinstance(error, SystemExit):
        raise ToolModuleError(
            f"importing tools module {what} called sys.exit({error.code!r}); a tools module must not exit when imported"
        ) from None
    if error is not None:
        raise ToolModuleError(f"importing tools module {what} failed: {type(error).__name__}: {error}") from error
    return outcome["value"]


@dataclass
class Catalog:
    """Every tool the lab knows, by name, and the task templates over them."""

    tools: dict[str, Tool] = field(default_factory=dict)
    templates: list[TaskTemplate] = field(default_factory=list)
    unseen_families: tuple[str, ...] = UNSEEN_FAMILIES

    def __getitem__(self, name: str) -> Tool:
        return self.tools[name]

    def __contains__(self, name: object) -> bool:
        return name in self.tools

    def __len__(self) -> int:
        return len(self.tools)

    @property
    def families(self) -> list[str]:
        return list(dict.fromkeys(tool.family for tool in self.tools.values()))

    def family(self, family: str) -> list[Tool]:
        return [tool for tool in self.tools.values() if tool.family == family]

    def schemas(self, names: Iterable[str]) -> list[dict]:
        return [self.tools[name].schema for name in names]

    def add(self, tool: Tool) -> None:
        if tool.name in self.tools and self.tools[tool.name].func is not tool.func:
            raise ToolModuleError(
                f"tool name {tool.name!r} is already taken by family "
                f"{self.tools[tool.name].family!r}; rename the function"
            )
        self.tools[tool.name] = tool

    def register_module(self, spec: str | Path | ModuleType, family: str | None = None) -> list[Tool]:
        """Add every public function of a module (or its ``TOOLS`` list) as tools of one family."""
        module = import_tools_module(spec)
        family = family or getattr(module, "FAMILY", None) or module.__name__.rsplit(".", 1)[-1]
        functions = _module_functions(module)
        if not functions:
            raise ToolModuleError(f"module {module.__name__} defines no public functions to use as tools")
        tools = [make_tool(func, family) for func in functions]
        for tool in tools:
            self.add(tool)
        self.templates.extend(getattr(module, "TEMPLATES", []))
        return tools


def load_catalog(tools_modules: Iterable[str | Path | ModuleType] = (), builtin: bool = True) -> Catalog:
    """The built-in families (unless ``builtin=False``) plus the user's tools modules."""
    catalog = Catalog()
    if builtin:
        for family in BUILTIN_FAMILIES:
            catalog.register_module(f"labkit.tools.{family}", family)
        catalog.templates.extend(importlib.import_module("labkit.tools.chains").TEMPLATES)
    for spec in tools_modules:
        catalog.register_module(spec)
    return catalog
