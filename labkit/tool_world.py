"""The tool world by hand: browse the tools, call one, evolve one, and see what a call made from its docs gets back.

Notebook 01 shows these (``labkit tools`` is its command-line twin): a tool's docs and a call's reply are
rendered as Markdown for a narrow column, and arguments typed into a text box are read with a message that
says what is wrong with them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from labkit.env import Observation, ToolCall, ToolEnv, call_once
from labkit.evolve import LEVEL_DESCRIPTIONS, evolve_toolset
from labkit.tasks import example_arguments, generate_tasks
from labkit.tools.registry import Catalog
from labkit.toolset import Change, base_toolset


def tool_rows(catalog: Catalog) -> list[dict]:
    """One row per tool for a browsable table."""
    unseen = set(catalog.unseen_families)
    return [
        {
            "tool": tool.name,
            "family": tool.family,
            "split": "unseen" if tool.family in unseen else "seen",
            "parameters": ", ".join(tool.parameters.get("properties", {})),
            "summary": tool.description.split("\n")[0],
        }
        for tool in catalog.tools.values()
    ]


@dataclass
class EvolutionDemo:
    """One tool at one level: the docs the agent reads, the truth, and what a documented call gets back."""

    tool: str
    level: int
    seed: int
    docs: dict
    real: dict
    changes: list[Change]
    arguments: dict
    observation: Observation


def evolution_demo(
    catalog: Catalog, tool: str, level: int, seed: int, arguments: dict | None = None, call_name: str | None = None
) -> EvolutionDemo:
    """Evolve ``tool`` and call it the documented way, or as ``call_name(**arguments)`` to try a fix."""
    toolset = evolve_toolset(base_toolset(catalog, [tool]), [tool], level, seed)
    if arguments is None:
        arguments = example_arguments(catalog, tool) or {}
    live = toolset.tools[tool]
    return EvolutionDemo(
        tool=tool,
        level=level,
        seed=seed,
        docs=toolset.doc(tool),
        real=live.real_schema(),
        changes=list(toolset.changes),
        arguments=arguments,
        observation=call_once(toolset, call_name or tool, arguments),
    )


def schema_markdown(schema: dict | None) -> str:
    """A tool's schema as a short signature and one line per parameter, readable in a narrow column."""
    if schema is None:
        return "*(no documentation)*"
    function = schema["function"]
    parameters = function.get("parameters", {})
    required = set(parameters.get("required", []))
    lines = [f"**`{function['name']}`**: {function.get('description') or '*(no description)*'}", ""]
    for name, spec in parameters.get("properties", {}).items():
        kind = " | ".join(map(str, spec["enum"])) if "enum" in spec else spec.get("type", "?")
        need = "required" if name in required else "optional"
        lines.append(f"- `{name}` ({kind}, {need}): {spec.get('description') or '*(undocumented)*'}")
    return "\n".join(lines)


def observation_markdown(observation: Observation) -> str:
    """What a call returned, with errors spelled out as type and message."""
    if observation.ok:
        return (
            "```json\n"
            f"""{
                json.dumps(json.loads(observation.content), indent=1)
                if not observation.truncated
                else observation.content
            }"""
            "\n```"
        )
    error = json.loads(observation.content)["error"]
    return f"**{error['type']}**: `{error['message']}`"


def levels_table() -> str:
    """The evolution levels as a Markdown table: what changes at each."""
    return "| level | what changes |\n|:--|:--|\n" + "\n".join(
        f"| {level} | {text} |" for level, text in LEVEL_DESCRIPTIONS.items()
    )


def parse_arguments(text: str) -> dict | str:
    """Arguments typed into a text box: a dict, or a message saying what is wrong with them."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        return f'not valid JSON ({exc.msg} at column {exc.colno}); write an object like {{"city": "Paris"}}'
    return value if isinstance(value, dict) else 'write a JSON object like {"city": "Paris"}'


def documented_call_failures(catalog: Catalog, n_tasks: int, seed: int = 0) -> dict[int, float]:
    """For each level, the share of gold calls that fail when made exactly as documented."""
    env = ToolEnv(catalog)
    rates = {}
    for level in range(5):
        split = "seen" if level == 0 else "evolved"
        tasks = generate_tasks(split, n_tasks, seed, None if level == 0 else level, catalog)
        failed = total = 0
        for task in tasks:
            env.reset(task)
            for call in task.calls:
                total += 1
                failed += not env.step(ToolCall(call.name, call.arguments)).observation.ok
        rates[level] = failed / total
    env.close()
    return rates
