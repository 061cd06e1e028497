"""The tool world by hand (notebook 01): browsing tools, evolving one and calling it, documented calls by level."""

from matplotlib.figure import Figure

from labkit import plots, tool_world
from labkit.toolset import ErrorKind


def test_tool_rows_cover_every_tool(catalog):
    rows = tool_world.tool_rows(catalog)
    assert len(rows) == len(catalog) and {r["split"] for r in rows} == {"seen", "unseen"}


def test_evolution_demo_shows_old_docs_truth_and_the_documented_call(catalog):
    demo = tool_world.evolution_demo(catalog, "get_capital", level=0, seed=0)
    assert demo.observation.ok and demo.changes == [] and demo.docs == catalog["get_capital"].schema
    broken = next(
        d
        for d in (tool_world.evolution_demo(catalog, "get_capital", 1, seed) for seed in range(30))
        if not d.observation.ok
    )
    assert broken.docs["function"]["name"] == "get_capital" and broken.changes
    assert broken.observation.error in {ErrorKind.UNKNOWN_PARAMETER, ErrorKind.DEPRECATED, ErrorKind.INVALID_VALUE}


def test_a_learner_can_fix_a_renamed_parameter_from_the_error(catalog):
    for seed in range(50):
        demo = tool_world.evolution_demo(catalog, "get_capital", 1, seed)
        if demo.observation.error is ErrorKind.UNKNOWN_PARAMETER:
            break
    message = demo.observation.content
    new_name = message.split("missing required parameter '")[1].split("'")[0]
    fixed = tool_world.evolution_demo(catalog, "get_capital", 1, seed, {new_name: demo.arguments["country"]})
    assert fixed.observation.ok


def test_parse_arguments_explains_bad_json():
    assert tool_world.parse_arguments('{"a": 1}') == {"a": 1}
    assert tool_world.parse_arguments("") == {}
    assert "not valid JSON" in tool_world.parse_arguments("{a")
    assert "JSON object" in tool_world.parse_arguments("[1]")


def test_documented_calls_fail_more_as_levels_rise(catalog):
    rates = tool_world.documented_call_failures(catalog, n_tasks=40)
    assert rates[0] == 0.0
    assert 0.2 < rates[1] < rates[4] <= 1.0
    assert isinstance(plots.failure_by_level(rates), Figure)
