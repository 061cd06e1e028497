"""ToolMaster Lab: trial-and-execution tool learning for LLMs, at laptop scale.

The public API, in the order data flows through it: tools and their catalog,
evolution, tasks, and the episode environment.
"""

from labkit.env import (
    Answer,
    EnvConfig,
    Invalid,
    Observation,
    Step,
    ToolCall,
    ToolEnv,
    Trajectory,
    build_toolset,
    call_once,
)
from labkit.evolve import EVAL_ONLY_OPERATORS, LEVELS, OPERATORS, TRAIN_OPERATORS, evolve_tool, evolve_toolset
from labkit.profiles import PROFILES, Profile, get_profile, resolve_profile
from labkit.tasks import SPLITS, Task, TaskFileError, check_answer, generate_tasks, load_tasks, save_tasks
from labkit.tools import SEEN_FAMILIES, UNSEEN_FAMILIES, Catalog, GoldCall, Tool, ToolModuleError, load_catalog
from labkit.toolset import Change, ErrorKind, LiveTool, Param, ToolCallError, ToolSet, base_toolset

__version__ = "0.1.0"

__all__ = [
    "EVAL_ONLY_OPERATORS",
    "LEVELS",
    "OPERATORS",
    "PROFILES",
    "SEEN_FAMILIES",
    "SPLITS",
    "TRAIN_OPERATORS",
    "UNSEEN_FAMILIES",
    "Answer",
    "Catalog",
    "Change",
    "EnvConfig",
    "ErrorKind",
    "GoldCall",
    "Invalid",
    "LiveTool",
    "Observation",
    "Param",
    "Profile",
    "Step",
    "Task",
    "TaskFileError",
    "Tool",
    "ToolCall",
    "ToolCallError",
    "ToolEnv",
    "ToolModuleError",
    "ToolSet",
    "Trajectory",
    "base_toolset",
    "build_toolset",
    "call_once",
    "check_answer",
    "evolve_tool",
    "evolve_toolset",
    "generate_tasks",
    "get_profile",
    "load_catalog",
    "load_tasks",
    "resolve_profile",
    "save_tasks",
]
