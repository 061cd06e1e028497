"""Every message template reads back what it wrote, and the environment and the teacher use the same ones."""

import random
import re
from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit import messages
from labkit.evolve import change_value_format, deprecate_with_redirect
from labkit.messages import (
    ACCEPTED_PARAMETERS,
    CHOICES_SPEC,
    DATE_FORMATS,
    MISSING_PARAMETER,
    NOT_ONE_OF,
    NOT_UPPER_CASE,
    REMOVED,
    UNEXPECTED_PARAMETER,
    UNIT_SCALES,
    WRONG_DATE_FORMAT,
    WRONG_TYPE,
    Template,
    join_list,
    parameter_spec,
    read_parameter_spec,
    signature_error,
    split_list,
)
from labkit.teachers.scripted import ToolNotes, locate
from labkit.toolset import ErrorKind, LiveTool, Param, ToolCallError, ToolSet, check_arguments

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None)

# What the environment puts in each field: names are identifiers, a repr'd value is anything a call can send.
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
kinds = st.sampled_from(["string", "integer", "number", "boolean", "array", "object"])
choices = st.lists(st.one_of(names, st.integers(-1000, 1000)), min_size=1, max_size=5)
line = st.text(st.characters(exclude_characters="\n"), max_size=40)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
dates = st.dates().map(date.isoformat)
specs = st.builds(parameter_spec, kinds, st.none() | choices)

# Each template, the strategies of its fields, and the fields that are written with !r (read back as their repr).
CASES = {
    "UNEXPECTED_PARAMETER": (UNEXPECTED_PARAMETER, {"name": names}, ()),
    "MISSING_PARAMETER": (MISSING_PARAMETER, {"name": names, "spec": specs}, ()),
    "ACCEPTED_PARAMETERS": (ACCEPTED_PARAMETERS, {"names": st.lists(names, min_size=1).map(join_list)}, ()),
    "CHOICES_SPEC": (CHOICES_SPEC, {"type": kinds, "choices": choices.map(join_list)}, ()),
    "WRONG_TYPE": (WRONG_TYPE, {"tool": names, "name": names, "type": kinds, "got": kinds, "value": line}, ()),
    "NOT_ONE_OF": (
        NOT_ONE_OF,
        {"tool": names, "name": names, "choices": choices.map(join_list), "value": values},
        ("value",),
    ),
    "WRONG_DATE_FORMAT": (
        WRONG_DATE_FORMAT,
        {"value": st.text(max_size=30), "name": names, "label": st.sampled_from(list(DATE_FORMATS))},
        ("value",),
    ),
    "NOT_UPPER_CASE": (NOT_UPPER_CASE, {"value": st.text(max_size=30), "name": names}, ("value",)),
    "REMOVED": (REMOVED, {"tool": names, "date": dates, "successor": names}, ()),
}


def test_every_template_has_a_round_trip_case():
    defined = {name for name, value in vars(messages).items() if isinstance(value, Template)}
    assert defined == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_template_reads_back_what_it_wrote(name):
    template, fields, quoted = CASES[name]

    @FUZZ
    @given(st.fixed_dictionaries(fields))
    def round_trip(written):
        read = template.find(template.format(**written))
        assert read == {k: repr(v) if k in quoted else v for k, v in written.items()}

    round_trip()


@FUZZ
@given(
    st.lists(names, max_size=3), st.lists(st.tuples(names, specs), max_size=3), st.lists(names, min_size=1, max_size=5)
)
def test_a_signature_error_reads_back_every_problem_and_every_accepted_parameter(unexpected, missing, accepted):
    message = signature_error("some_tool", unexpected, missing, accepted)
    assert UNEXPECTED_PARAMETER.find_all(message) == unexpected
    assert MISSING_PARAMETER.find_all(message) == missing
    assert split_list(ACCEPTED_PARAMETERS.find(message)["names"]) == accepted


@FUZZ
@given(kinds, st.none() | st.lists(st.one_of(names, st.integers()), max_size=5))
def test_a_parameter_spec_reads_back_its_type_and_choices(kind, listed):
    assert read_parameter_spec(parameter_spec(kind, listed)) == (
        kind,
        None if listed is None else [str(v) for v in listed],
    )


def test_a_list_cut_short_is_not_read_as_complete():
    message = signature_error("t", [], [("city", "string")], ["city", "country"])
    assert ACCEPTED_PARAMETERS.find(message[:-8] + "... [truncated 8 characters]") is None


# --------------------------------------------------------------------------- the environment writes them, word for word


def refusal(params: list[Param], arguments: dict) -> ToolCallError:
    with pytest.raises(ToolCallError) as caught:
        check_arguments("get_weather", params, arguments)
    return caught.value


def test_the_tools_write_their_refusals_with_the_templates():
    city, unit = Param("city"), Param("unit", enum=("celsius", "kelvin"))
    error = refusal([city, unit], {"town": "Paris"})
    assert error.kind is ErrorKind.UNKNOWN_PARAMETER
    assert error.message == (
        "get_weather: unexpected parameter 'town'; missing required parameter 'city' (string); "
        "missing required parameter 'unit' (string, one of: celsius, kelvin). Accepted parameters: city, unit."
    )
    assert refusal([], {"x": 1}).message == "get_weather: unexpected parameter 'x'. Accepted parameters: none."
    error = refusal([city], {"city": ["Paris"]})
    assert error.message == """get_weather: parameter 'city' must be string, got array ["Paris"]"""
    assert WRONG_TYPE.find(error.message) == {
        "tool": "get_weather",
        "name": "city",
        "type": "string",
        "got": "array",
        "value": '["Paris"]',
    }
    error = refusal([unit], {"unit": "fahrenheit"})
    assert error.message == "get_weather: parameter 'unit' must be one of: celsius, kelvin; got 'fahrenheit'"
    assert NOT_ONE_OF.find(error.message)["choices"] == "celsius, kelvin"


def evolved(operator, param: Param, seed: int) -> ToolSet:
    tool = LiveTool("get_day", [param], lambda kwargs: kwargs)
    toolset = ToolSet({"get_day": tool}, [{"type": "function", "function": {"name": "get_day", "parameters": {}}}])
    assert operator(toolset, "get_day", random.Random(seed))
    return toolset


def test_evolution_writes_its_refusals_with_the_templates():
    toolset = evolved(deprecate_with_redirect, Param("day"), 0)
    with pytest.raises(ToolCallError) as caught:
        toolset.tools["get_day"].call({})
    removed = REMOVED.find(caught.value.message)
    assert removed["tool"] == "get_day" and removed["successor"] in toolset.tools
    assert caught.value.message == f"'get_day' was removed on {removed['date']}; use '{removed['successor']}' instead."

    for seed in range(20):
        toolset = evolved(change_value_format, Param("date", description="A date as YYYY-MM-DD"), seed)
        with pytest.raises(ToolCallError) as caught:
            toolset.tools["get_day"].call({"date": "2024-03-05"})
        label = WRONG_DATE_FORMAT.find(caught.value.message)["label"]
        assert caught.value.message == f"invalid value '2024-03-05' for parameter 'date': expected format {label}"
    toolset = evolved(change_value_format, Param("country", description="A country name"), 0)
    with pytest.raises(ToolCallError) as caught:
        toolset.tools["get_day"].call({"country": "Japan"})
    assert (
        caught.value.message == "invalid value 'Japan' for parameter 'country': must be upper-case (pattern ^[^a-z]+$)"
    )
    assert NOT_UPPER_CASE.find(caught.value.message) == {"value": "'Japan'", "name": "country"}


# ------------------------------------------------------------ the teacher speaks the formats and units the tools demand


@pytest.mark.parametrize("label", sorted(DATE_FORMATS))
def test_the_teacher_writes_dates_in_every_format_the_tools_demand(label):
    notes = ToolNotes("get_day")
    learned = notes.learn(
        {"type": "invalid_value", "message": WRONG_DATE_FORMAT.format(value="2024-03-05", name="date", label=label)}, {}
    )
    assert learned == f"'date' takes dates as {label} now"
    written = notes.arguments({"date": "2024-03-05"})["date"]
    pattern, strptime = DATE_FORMATS[label]
    assert re.match(pattern, written) and datetime.strptime(written, strptime).date() == date(2024, 3, 5)


@pytest.mark.parametrize("factor, suffix", UNIT_SCALES)
def test_the_teacher_reads_every_unit_the_tools_rescale_to(factor, suffix):
    value, how = locate({f"temperature{suffix}": 18.5 * factor}, "temperature")
    assert (
        value == pytest.approx(18.5) and how == f"'temperature{suffix}' is in 1/{factor} units, so I divide by {factor}"
    )
    assert locate({"status": "ok", f"data{suffix}": 5 * factor}, None, "number")[0] == pytest.approx(5)
