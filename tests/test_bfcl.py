"""BFCL through bfcl-eval's own data and AST checker, installed isolated (``pip install --no-deps --target``).

The session fixture installs the pinned bfcl-eval into the labkit cache once
(about 1 s from PyPI, then no network); without PyPI and without a cached copy
these tests are skipped with the install command to run. No mocks: every verdict
below comes from BFCL's official ``ast_checker``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from labkit import bfcl, protocol
from labkit.env import ToolCall


@pytest.fixture(scope="session")
def bfcl_folder():
    try:
        return bfcl.ensure_bfcl()
    except bfcl.BFCLNotAvailableError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def items(bfcl_folder):
    return {category: bfcl.load_bfcl(category) for category in bfcl.CATEGORIES}


def _first(options: list):
    """One acceptable value from a BFCL option list ("" marks an optional parameter that may be left out)."""
    return next((option for option in options if option != ""), "")


def _value(option):
    """A concrete value from one option; inside nested dicts every key again holds a list of options."""
    if isinstance(option, dict):
        return {key: _value(_first(options)) for key, options in option.items() if _first(options) != ""}
    if isinstance(option, list):
        return [_value(element) for element in option]
    return option


def _answer_call(item: bfcl.BFCLItem) -> tuple[str, dict]:
    ((name, params),) = item.possible_answer[0].items()
    return name, {param: _value(_first(options)) for param, options in params.items() if _first(options) != ""}


def _as_turn(name: str, arguments: dict) -> str:
    """The assistant turn our chat template renders for this call, as a model would write it."""
    message = protocol.assistant_message(ToolCall(name, arguments, "execution", "Calling the tool."))
    text = protocol.render([{"role": "user", "content": "q"}, message])
    return text.split("<|im_start|>assistant\n", 1)[1]


# ----------------------------------------------------------------------------- the official checker, round trip


@pytest.mark.parametrize("category", bfcl.CATEGORIES)
def test_official_checker_accepts_possible_answers_written_as_our_tool_calls(items, category):
    """Every BFCL possible answer, rendered as our <tool_call>
    turn and read back by parse_turn, passes BFCL's checker."""
    chosen = items[category]
    outputs = [_as_turn(*_answer_call(item)) for item in chosen]
    assert "<tool_call>" in outputs[0] and outputs[0].rstrip().endswith(protocol.END_OF_TURN)
    result = bfcl.score_bfcl(chosen, outputs, category)
    rejected = [d for d in result.details if not d["valid"]]
    assert not rejected, rejected[:3]
    assert result.accuracy == 1.0 and result.n == len(chosen) == {"simple_python": 400, "multiple": 200}[category]


def _corrupt(item: bfcl.BFCLItem) -> tuple[str, dict, str] | None:
    """The answer call with one required scalar argument changed
    to a value of the same type that BFCL does not accept."""
    name, arguments = _answer_call(item)
    function = next(f for f in item.functions if f["name"] == name)
    for param in function["parameters"].get("required", []):
        value = arguments.get(param)
        if isinstance(value, bool):
            wrong = not value
        elif isinstance(value, (int, float)):
            wrong = value + 7919
        elif isinstance(value, str):
            wrong = "zz unrelated value qq"
        else:
            continue
        options = item.possible_answer[0][name][param]
        if wrong in options:
            continue
        return name, {**arguments, param: wrong}, param
    return None


@pytest.mark.parametrize("category", bfcl.CATEGORIES)
def test_official_checker_rejects_a_corrupted_argument(items, category):
    chosen = bfcl.load_bfcl(category, limit=30, seed=1)
    corrupted = [(item, _corrupt(item)) for item in chosen]
    corrupted = [(item, change) for item, change in corrupted if change is not None]
    assert len(corrupted) >= 25
    result = bfcl.score_bfcl(
        [i for i, _ in corrupted], [_as_turn(name, args) for _, (name, args, _) in corrupted], category
    )
    assert result.correct == 0, [d for d in result.details if d["valid"]][:3]
    assert all(t.startswith(("value_error", "type_error")) for t in result.error_types), result.error_types
    param = corrupted[0][1][2]
    assert param in result.details[0]["error"]


def test_checker_verdicts_on_malformed_turns(items):
    simple = items["simple_python"][0]
    name, arguments = _answer_call(simple)
    call = json.dumps({"name": name, "arguments": arguments})
    outputs = {
        "two calls": f"<tool_call>\n{call}\n</tool_call><tool_call>\n{call}\n</tool_call>",
        "bad json": '<tool_call>\n{"name": "calculate_triangle_area", "arguments": {"base": }\n</tool_call>',
        "string arguments": "<tool_call>\n" + json.dumps({"name": name, "arguments": "base=10"}) + "\n</tool_call>",
        "wrong function": _as_turn("triangle_area", arguments),
        "missing argument": _as_turn(name, {k: v for k, v in arguments.items() if k != "base"}),
    }
    result = bfcl.score_bfcl([simple] * len(outputs), list(outputs.values()), "simple_python")
    kinds = dict(zip(outputs, (d["error_type"] for d in result.details)))
    assert kinds == {
        "two calls": "simple_function_checker:wrong_count",
        "bad json": bfcl.DECODER_FAILED,
        "string arguments": bfcl.WRONG_FORMAT,
        "wrong function": "simple_function_checker:wrong_func_name",
        "missing argument": "simple_function_checker:missing_required",
    }
    assert result.correct == 0


def test_outputs_without_a_tool_call_score_zero(items):
    chosen = items["multiple"][:4]
    outputs = ["", "The answer is 42.", "<answer>42</answer>", "```python\ncalculate(3)\n```"]
    result = bfcl.score_bfcl(chosen, outputs, "multiple")
    assert (result.accuracy, result.correct, result.valid) == (0.0, 0, [False] * 4)
    assert result.error_types == {bfcl.NO_CALL: 4}
    assert bfcl.bootstrap_ci(result.valid) == [0.0, 0.0]


# ----------------------------------------------------------------------------- data and tool schemas


def test_load_bfcl_and_seeded_subsets(items):
    first = items["simple_python"][0]
    assert first.id == "simple_python_0" and first.question == [
        {"role": "user", "content": first.question[0]["content"]}
    ]
    assert first.possible_answer[0]["calculate_triangle_area"]["base"] == [10]
    assert all(2 <= len(item.functions) <= 4 for item in items["multiple"])
    subset = bfcl.load_bfcl("multiple", limit=20, seed=3)
    assert [i.id for i in subset] == [i.id for i in bfcl.load_bfcl("multiple", limit=20, seed=3)]
    assert [i.id for i in subset] != [i.id for i in bfcl.load_bfcl("multiple", limit=20, seed=4)]
    positions = [int(i.id.rsplit("_", 1)[1]) for i in subset]
    assert positions == sorted(positions) and positions != list(range(20))  # in BFCL's order, not its first 20
    with pytest.raises(ValueError, match="unknown BFCL category"):
        bfcl.load_bfcl("simple_java")


def test_function_docs_become_json_schemas_that_our_template_renders():
    doc = {
        "name": "geo.distance",
        "description": "Distance between two points.",
        "parameters": {
            "type": "dict",
            "properties": {
                "a": {"type": "tuple", "items": {"type": "float"}, "description": "First point."},
                "unit": {"type": "string", "enum": ["km", "mi"], "default": "km"},
                "meta": {"type": "dict", "properties": {"tag": {"type": "any"}}},
            },
            "required": ["a"],
        },
    }
    (tool,) = bfcl.to_tools([doc])
    params = tool["function"]["parameters"]
    assert params["type"] == "object" and params["required"] == ["a"]
    assert params["properties"]["a"] == {"type": "array", "description": "First point.", "items": {"type": "number"}}
    assert params["properties"]["meta"] == {"type": "object", "properties": {"tag": {}}}
    assert doc["parameters"]["type"] == "dict"  # BFCL's doc itself is untouched: the checker reads it
    text = protocol.render([{"role": "user", "content": "q"}], tools=[tool])
    assert (
        "geo.distance(a: array, unit?: km|mi, meta?: object): Distance between two points.\n  a: First point.\n" in text
    )


# ----------------------------------------------------------------------------- isolation


def test_install_from_scratch_is_isolated_and_atomic(tmp_path):
    started = time.perf_counter()
    try:
        folder = bfcl.ensure_bfcl(tmp_path)
    except bfcl.BFCLNotAvailableError as exc:
        pytest.skip(str(exc))
    seconds = time.perf_counter() - started
    assert seconds < 60, f"installing bfcl-eval took {seconds:.0f} s"
    assert folder == tmp_path / f"bfcl-eval-{bfcl.BFCL_VERSION}"
    names = {p.name for p in folder.iterdir()}
    assert {"bfcl_eval", f"bfcl_eval-{bfcl.BFCL_VERSION}.dist-info", bfcl.MARKER_NAME} <= names
    assert not names & {"numpy", "openai", "anthropic", "torch", "pandas"}  # --no-deps: nothing but bfcl-eval
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no temporary folder left behind
    marker = (folder / bfcl.MARKER_NAME).stat().st_mtime_ns
    assert bfcl.ensure_bfcl(tmp_path) == folder and (folder / bfcl.MARKER_NAME).stat().st_mtime_ns == marker


def test_checker_import_loads_no_vendor_sdk_and_leaves_the_lab_stack_alone(bfcl_folder):
    probe = (
        "import sys, importlib.metadata as md\n"
        "from labkit.bfcl import official_checker\n"
        "checker, language = official_checker()\n"
        "print(checker.__module__, language.PYTHON.value, md.version('numpy'))\n"
        "sdks = ('anthropic', 'openai', 'mistralai', 'cohere', 'google.genai', 'boto3', 'qwen_agent')\n"
        "print(sorted(m for m in sdks if m in sys.modules))\n"
        "print(sys.modules['bfcl_eval'].__path__[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=dict(os.environ), timeout=120
    )
    assert done.returncode == 0, done.stderr
    imported, sdks, location = done.stdout.strip().splitlines()
    module, language, numpy_version = imported.split()
    assert (module, language) == ("bfcl_eval.eval_checker.ast_eval.ast_checker", "python")
    assert not numpy_version.startswith("1.26")  # bfcl-eval pins numpy==1.26.4; the lab keeps its own
    assert sdks == "[]"
    assert location.startswith(str(bfcl_folder))


def test_no_pypi_and_nothing_cached_is_a_clear_error(tmp_path, monkeypatch):
    """A real pip run that can reach no package source (not a
    mock): the error says what to run, nothing is left behind."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels-here"))
    cache = tmp_path / "cache"
    with pytest.raises(bfcl.BFCLNotAvailableError, match=r"is not installed in .*pip install --no-deps --target"):
        bfcl.ensure_bfcl(cache)
    assert list(cache.iterdir()) == []


# ----------------------------------------------------------------------------- the embedded model, end to end


@pytest.fixture(scope="module")
def embedded():
    from labkit.models import ModelNotAvailableError, load_embedded_model, load_tokenizer

    try:
        return load_embedded_model(), load_tokenizer()
    except ModelNotAvailableError as exc:
        pytest.skip(str(exc))


@pytest.mark.slow
def test_embedded_model_end_to_end(bfcl_folder, embedded, tmp_path):
    """Three items per category, 32 new tokens each: about 15 s on 2 idle cores."""
    padding_side = embedded[1].padding_side
    summary = bfcl.evaluate_bfcl(embedded, limit=3, out=tmp_path, max_new_tokens=32)
    assert set(summary["categories"]) == set(bfcl.CATEGORIES)
    for row in summary["categories"].values():
        assert row["n"] == 3 and 0.0 <= row["accuracy"] <= 1.0
        low, high = row["ci95"]
        assert 0.0 <= low <= row["accuracy"] <= high <= 1.0
        assert sum(row["error_types"].values()) == row["n"] - row["correct"]
    assert json.loads((tmp_path / "bfcl.json").read_text()) == summary
    rows = [json.loads(line) for line in (tmp_path / "bfcl_items.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(protocol.END_OF_TURN not in row["output"] for row in rows)
    assert embedded[1].padding_side == padding_side  # generation pads on the left, then puts it back


def test_labkit_bfcl_command_scores_the_tiny_model(bfcl_folder, tmp_path, capsys):
    from labkit.cli import main

    out = tmp_path / "bfcl"
    assert main(["bfcl", "--model", "tiny", "--limit", "3", "--max-new-tokens", "8", "--out", str(out)]) == 0
    summary = json.loads((out / "bfcl.json").read_text())
    assert set(summary["categories"]) == {"simple_python", "multiple"}
    assert all(row["n"] == 3 and row["accuracy"] == 0.0 for row in summary["categories"].values())
    assert "accuracy" in capsys.readouterr().out
