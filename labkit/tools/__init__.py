"""Tool families and the catalog that holds them (see ``registry``)."""

from labkit.tools.base import GoldCall, TaskDraft, TaskTemplate, read_path
from labkit.tools.registry import (
    BUILTIN_FAMILIES,
    SEEN_FAMILIES,
    UNSEEN_FAMILIES,
    Catalog,
    Tool,
    ToolModuleError,
    load_catalog,
    make_tool,
)

__all__ = [
    "BUILTIN_FAMILIES",
    "SEEN_FAMILIES",
    "UNSEEN_FAMILIES",
    "Catalog",
    "GoldCall",
    "TaskDraft",
    "TaskTemplate",
    "Tool",
    "ToolModuleError",
    "load_catalog",
    "make_tool",
    "read_path",
]
