import json
import random

import pytest
from conftest import FIXTURES

from labkit.env import call_once
from labkit.evolve import (
    EVAL_ONLY_OPERATORS,
    LEVELS,
    OPERATORS,
    TRAIN_OPERATORS,
    add_distractors,
    add_required_parameter,
    change_output_shape,
    change_output_units,
    change_value_format,
    degrade_docs,
    deprecate_with_redirect,
    evolve_tool,
    evolve_toolset,
    rename_parameter,
)
from labkit.tools import load_catalog
from labkit.toolset import ErrorKind, base_toolset

ARGS = {"port": "Brest", "date": "2025-03-14"}
ORIGINAL = {"port": "Brest", "date": "2025-03-14", "high": 6.1, "low": 0.9}


@pytest.fixture(scope="module")
def tides():
    return load_catalog([FIXTURES / "user_tools.py"], builtin=False)


def fresh(tides):
    return base_toolset(tides, ["tides_on", "high_tide"])


def call(toolset, args, name="tides_on"):
    obs = call_once(toolset, name, args)
    return obs, json.loads(obs.content)


def seed_where(op, tides, predicate):
    """The first seed whose change satisfies ``predicate`` (operators pick among variants by seed)."""
    for seed in range(200):
        toolset = fresh(tides)
        change = op(toolset, "tides_on", random.Random(seed))
        if predicate(change, toolset):
            return toolset, change
    raise AssertionError("no seed gave the wanted variant")


def test_level_zero_is_the_documented_tool(tides):
    toolset = fresh(tides)
    assert evolve_tool(toolset, "tides_on", 0, 1) == []
    assert call(toolset, ARGS)[1] == ORIGINAL


def test_rename_breaks_the_documented_call_and_the_error_points_at_the_fix(tides):
    toolset, change = seed_where(rename_parameter, tides, lambda c, t: c is not None)
    renamed = {p.name for p in toolset.tools["tides_on"].params} - {"port", "date", "unit"}
    (new,) = renamed
    old = next(k for k in ARGS if k not in {p.name for p in toolset.tools["tides_on"].params})
    obs, body = call(toolset, ARGS)
    assert obs.error is ErrorKind.UNKNOWN_PARAMETER
    assert f"unexpected parameter '{old}'" in body["error"]["message"] and f"'{new}'" in body["error"]["message"]
    fixed = {(new if k == old else k): v for k, v in ARGS.items()}
    assert call(toolset, fixed)[1] == ORIGINAL
    assert toolset.doc("tides_on") == tides["tides_on"].schema, "the agent keeps the old docs"


def test_date_format_change(tides):
    toolset, change = seed_where(change_value_format, tides, lambda c, t: "DD.MM.YYYY" in c.detail)
    obs, body = call(toolset, ARGS)
    assert obs.error is ErrorKind.INVALID_VALUE and "expected format DD.MM.YYYY" in body["error"]["message"]
    assert call(toolset, {**ARGS, "date": "14.03.2025"})[1] == ORIGINAL
    assert call(toolset, {**ARGS, "date": "31.02.2025"})[0].error is ErrorKind.INVALID_VALUE


def test_identifier_format_change(tides):
    toolset, change = seed_where(change_value_format, tides, lambda c, t: "'port'" in c.detail)
    obs, body = call(toolset, ARGS)
    assert obs.error is ErrorKind.INVALID_VALUE and "must be upper-case" in body["error"]["message"]
    assert call(toolset, {**ARGS, "port": "BREST"})[1] == ORIGINAL


def test_output_units_change_scales_numbers_and_labels_keys(tides):
    toolset, change = seed_where(change_output_units, tides, lambda c, t: "_milli" in c.detail)
    body = call(toolset, ARGS)[1]
    assert body["high_milli"] == pytest.approx(6100) and body["port"] == "Brest"


def test_output_units_skip_tools_returning_text(misbehaving_catalog):
    toolset = base_toolset(misbehaving_catalog, ["echo"])
    assert change_output_units(toolset, "echo", random.Random(0)) is None


@pytest.mark.parametrize("variant", ["envelope", "nested", "records"])
def test_output_shape_change_keeps_the_data(tides, variant):
    toolset, change = seed_where(change_output_shape, tides, lambda c, t: variant in c.detail)
    text = json.dumps(call(toolset, ARGS)[1])
    assert all(json.dumps(v) in text for v in ORIGINAL.values())
    assert call(toolset, ARGS)[1] != ORIGINAL


def test_new_required_parameter(tides):
    toolset, change = seed_where(add_required_parameter, tides, lambda c, t: c is not None)
    extra = toolset.tools["tides_on"].params[-1]
    obs, body = call(toolset, ARGS)
    assert obs.error is ErrorKind.MISSING_PARAMETER and f"'{extra.name}'" in body["error"]["message"]
    wrong = call(toolset, {**ARGS, extra.name: "bogus" if extra.type == "string" else 99})[0]
    assert wrong.error in (ErrorKind.INVALID_VALUE, ErrorKind.WRONG_TYPE)
    assert call(toolset, {**ARGS, extra.name: extra.enum[0]})[1] == ORIGINAL


def test_deprecation_redirects(tides):
    toolset, change = seed_where(deprecate_with_redirect, tides, lambda c, t: c is not None)
    successor = change.detail.split("'")[-2]
    obs, body = call(toolset, ARGS)
    assert obs.error is ErrorKind.DEPRECATED and f"use '{successor}'" in body["error"]["message"]
    assert call(toolset, ARGS, successor)[1] == ORIGINAL
    assert toolset.doc(successor) is None, "the replacement is undocumented: only the error reveals it"


def test_distractors_look_alike_but_are_disabled(tides):
    toolset, change = seed_where(add_distractors, tides, lambda c, t: c is not None)
    twins = [d["function"]["name"] for d in toolset.docs if d["function"]["name"].startswith("tides_on_")]
    assert len(twins) == 2
    for twin in twins:
        assert toolset.doc(twin)["function"]["description"] == toolset.doc("tides_on")["function"]["description"]
        assert call(toolset, ARGS, twin)[0].error is ErrorKind.UNAVAILABLE
    assert call(toolset, ARGS)[1] == ORIGINAL


@pytest.mark.parametrize("variant", ["lost every description", "wrong parameters"])
def test_degraded_docs_only_change_what_the_agent_reads(tides, variant):
    toolset, change = seed_where(degrade_docs, tides, lambda c, t: variant in c.detail)
    assert toolset.doc("tides_on") != tides["tides_on"].schema
    assert call(toolset, ARGS)[1] == ORIGINAL


@pytest.mark.parametrize("level", range(5))
def test_levels_stack_the_documented_number_of_changes(tides, level):
    behaviour, interface = LEVELS[level]
    evolved = evolve_toolset(fresh(tides), ["tides_on"], level, seed=3)
    assert len(evolved.changes) == behaviour + interface
    assert evolved.level == level


def test_evolution_is_deterministic_per_seed(tides):
    def outcome(seed):
        toolset = evolve_toolset(fresh(tides), ["tides_on", "high_tide"], 4, seed)
        return [c for c in toolset.changes], [call_once(toolset, "tides_on", ARGS).content], toolset.docs

    assert outcome(11) == outcome(11)
    assert any(outcome(11) != outcome(s) for s in (12, 13, 14))


def test_the_base_toolset_is_never_mutated(tides):
    base = fresh(tides)
    evolve_toolset(base, ["tides_on"], 4, seed=5)
    assert base.changes == [] and call(base, ARGS)[1] == ORIGINAL


def test_train_operators_leave_out_the_evaluation_only_ones(tides):
    assert set(EVAL_ONLY_OPERATORS) <= set(OPERATORS) and not set(EVAL_ONLY_OPERATORS) & set(TRAIN_OPERATORS)
    for seed in range(30):
        evolved = evolve_toolset(fresh(tides), ["tides_on"], 4, seed, TRAIN_OPERATORS)
        assert not {c.operator for c in evolved.changes} & set(EVAL_ONLY_OPERATORS)


def test_bad_level_and_operator_names_are_clear_errors(tides):
    with pytest.raises(ValueError, match="level must be one of"):
        evolve_toolset(fresh(tides), ["tides_on"], 7, 0)
    with pytest.raises(ValueError, match="unknown evolution operators"):
        evolve_toolset(fresh(tides), ["tides_on"], 2, 0, ("teleport",))
