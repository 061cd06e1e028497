import json

import pytest
from conftest import FIXTURES
from matplotlib.figure import Figure

from labkit import plots
from labkit.env import Answer, ToolCall, ToolEnv
from labkit.tasks import (
    SPLITS,
    Task,
    TaskFileError,
    check_answer,
    example_arguments,
    generate_tasks,
    load_tasks,
    save_tasks,
    task_rows,
    task_summary,
)
from labkit.tools import SEEN_FAMILIES, UNSEEN_FAMILIES, load_catalog, read_path


@pytest.mark.parametrize("split", SPLITS)
def test_same_seed_gives_byte_identical_files(tmp_path, catalog, split):
    a = save_tasks(generate_tasks(split, 40, seed=3, catalog=catalog), tmp_path / "a.jsonl")
    b = save_tasks(generate_tasks(split, 40, seed=3, catalog=catalog), tmp_path / "b.jsonl")
    c = save_tasks(generate_tasks(split, 40, seed=4, catalog=catalog), tmp_path / "c.jsonl")
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_splits_keep_their_families_and_levels(catalog):
    for split in SPLITS:
        tasks = generate_tasks(split, 200, seed=0, catalog=catalog)
        families = {f for t in tasks for f in t.families}
        assert families <= set(UNSEEN_FAMILIES if split == "unseen" else SEEN_FAMILIES), split
        levels = {t.level for t in tasks}
        assert levels == {"train": {0, 1, 2, 3, 4}, "seen": {0}, "evolved": {1, 2, 3, 4}, "unseen": {0}}[split]
        assert {t.hops for t in tasks} >= {1, 2}, "tasks span one and several hops"
        assert max(t.hops for t in tasks) <= 3
        assert len({t.id for t in tasks}) == len(tasks)
    assert {t.level for t in generate_tasks("evolved", 20, seed=0, level=3, catalog=catalog)} == {3}


def test_three_hop_tasks_exist(catalog):
    assert any(t.hops == 3 for t in generate_tasks("train", 300, seed=1, catalog=catalog))


@pytest.mark.parametrize("split", SPLITS)
def test_gold_calls_solve_every_generated_task_at_level_zero(catalog, split):
    env = ToolEnv(catalog)
    for task in generate_tasks(split, 60, seed=5, catalog=catalog):
        task.level = 0
        env.reset(task)
        value = None
        for call in task.calls:
            obs = env.step(ToolCall(call.name, call.arguments)).observation
            assert obs.ok, (task.id, obs.content)
            value = read_path(json.loads(obs.content), call.read)
        answer = ", ".join(value) if task.check == "set" else str(value)
        assert env.step(Answer(answer)).reward == 1.0, (task.query, answer, task.answer)


def test_documented_calls_on_evolved_tools_fail_without_leaking_the_answer(catalog):
    env = ToolEnv(catalog)
    leaked, failed = [], 0
    for task in generate_tasks("evolved", 120, seed=2, catalog=catalog):
        env.reset(task)
        for call in task.calls:
            obs = env.step(ToolCall(call.name, call.arguments)).observation
            if not obs.ok:
                failed += 1
                gold = str(task.answer)
                if len(gold) >= 3 and gold.casefold() in obs.content.casefold():
                    leaked.append((task.id, obs.content))
            if env.trajectory.done:
                break
    assert failed > 40, "evolved tools should break many documented calls"
    assert not leaked


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "Expecting property name"),
        ('["a list"]', "must be a JSON object"),
        ('{"id": "x", "query": "q", "tools": ["echo"]}', "missing field(s) ['answer']"),
        ('{"id": "x", "query": "q", "tools": ["echo"], "answer": 1, "check": "fuzzy"}', "'check' must be one of"),
        ('{"id": "x", "query": "q", "tools": ["echo"], "answer": "a", "check": "number"}', "needs a numeric"),
        ('{"id": "x", "query": "q", "tools": [], "answer": "a"}', "non-empty list of tool names"),
        ('{"id": "x", "query": "q", "tools": ["echo"], "answer": "a", "level": 9}', "from 0 to 4"),
        ('{"id": "x", "query": "q", "tools": ["echo"], "answer": "a", "calls": [{"nom": 1}]}', "unexpected keyword"),
        ('{"id": "x", "query": "q", "tools": ["echo"], "answer": "a", "split": 5}', "'split' must be one of"),
        (
            '{"id": "x", "query": "q", "tools": ["echo"], "answer": "a", "evolve_seed": [1, 2]}',
            "'evolve_seed' must be an integer",
        ),
        (
            '{"id": "x", "query": "q", "tools": ["echo"], "answer": 1, "check": "number", "tolerance": "5%"}',
            "'tolerance' must be a number",
        ),
        (
            '{"id": "x", "query": "q", "tools": ["echo"], "answer": "a", "families": "weather"}',
            "'families' must be a list",
        ),
        ('{"id": "x", "query": "q", "tools": ["echo"], "answer": "a", "calls": 5}', "'calls' a list of objects"),
        (
            '{"id": "x", "query": "q", "tools": ["echo"], "answer": "a", "calls": [{"name": "echo", "arguments": 3}]}',
            "each of 'calls' must be",
        ),
        ('{"id": "x", "query": "q", "tools": ["echo"], "answer": "a", "meta": 1}', "'meta' must be a JSON object"),
        ('{"id": "x", "query": "q", "tools": ["echo"], "answer": ' + "[" * 5000 + "]" * 5000 + "}", "recursion"),
        ('{"id": "x", "query": "q", "tools": ["echo"], "answer": ' + "9" * 4301 + "}", "4300 digits"),
        ('{"id": "x", "query": "\udcff", "tools": ["echo"], "answer": "a"}', "not UTF-8"),
    ],
)
def test_corrupt_task_lines_name_the_line_and_the_problem(tmp_path, line, message):
    path = tmp_path / "tasks.jsonl"
    good = '{"id": "ok", "query": "q", "tools": ["echo"], "answer": "a"}'
    path.write_bytes(f"{good}\n{line}\n".encode("utf-8", "surrogateescape"))
    with pytest.raises(TaskFileError) as info:
        load_tasks(path)
    assert f"{path}:2:" in str(info.value) and message in str(info.value)


def test_a_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text('{"id": "ok", "query": "q", "tools": ["echo"], "answer": "a"}\n', encoding="utf-8-sig")
    assert [t.id for t in load_tasks(path)] == ["ok"]


def test_duplicate_ids_missing_files_and_unknown_tools(tmp_path, catalog):
    path = tmp_path / "tasks.jsonl"
    row = '{"id": "same", "query": "q", "tools": ["get_nothing"], "answer": "a"}\n'
    path.write_text(row + row)
    with pytest.raises(TaskFileError, match="duplicate task id 'same'"):
        load_tasks(path)
    path.write_text(row)
    with pytest.raises(TaskFileError, match="unknown tool.*--tools-module"):
        load_tasks(path, catalog)
    with pytest.raises(TaskFileError, match="does not exist"):
        load_tasks(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(TaskFileError, match="holds no tasks"):
        load_tasks(tmp_path / "empty.jsonl")


def test_user_tools_and_tasks_work_together(tmp_path):
    catalog = load_catalog([FIXTURES / "user_tools.py"])
    tasks = load_tasks(FIXTURES / "user_tasks.jsonl", catalog)
    assert tasks[0].meta == {"course": "coastal"}, "unknown fields are kept, not dropped"
    roundtrip = load_tasks(save_tasks(tasks, tmp_path / "copy.jsonl"))
    assert [t.to_json() for t in roundtrip] == [t.to_json() for t in tasks]
    env = ToolEnv(catalog)
    env.reset(tasks[0])
    assert env.step(ToolCall("high_tide", {"port": "Brest"})).observation.content == "6.1"
    assert env.step(Answer("6.1 metres")).reward == 1.0
    evolved = env.reset(tasks[1])
    assert evolved.changes, "a user task's level evolves the user's own tool"


def test_save_is_atomic(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text("precious\n")

    class Boom(Task):
        def to_json(self):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_tasks([Boom(id="x", query="q", tools=["a"], answer="a")], path)
    assert path.read_text() == "precious\n" and list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(
    "check, gold, reply, ok",
    [
        ("exact", "Paris", "  paris. ", True),
        ("exact", "Paris", "Lyon", False),
        ("number", 18.5, "18.5 °C", True),
        ("number", 18.5, "about 18.6", True),
        ("number", 18.5, "19", False),
        ("number", 1234.5, "1,234.5", True),
        ("number", -3, "-3", True),
        ("number", 0, "no idea", False),
        ("set", ["EUR", "USD"], "usd and eur", True),
        ("set", ["EUR", "USD"], "EUR", False),
        ("contains", "Tokyo", "It is in tokyo, Japan", True),
        ("contains", "Tokyo", "Kyoto", False),
    ],
)
def test_check_answer(check, gold, reply, ok):
    task = Task(id="x", query="q", tools=["a"], answer=gold, check=check)
    assert check_answer(task, reply) is ok
    assert check_answer(task, None) is False


def test_every_tool_used_by_a_template_has_example_arguments(catalog):
    used = {
        c.name
        for t in generate_tasks("train", 300, 0, catalog=catalog) + generate_tasks("unseen", 200, 0, catalog=catalog)
        for c in t.calls
    }
    assert len(used) >= 25
    for name in used:
        assert example_arguments(catalog, name) is not None


def test_generation_rejects_bad_requests(catalog):
    with pytest.raises(ValueError, match="split must be one of"):
        generate_tasks("holdout", 5, catalog=catalog)
    with pytest.raises(ValueError, match="seen split is level 0"):
        generate_tasks("seen", 5, level=2, catalog=catalog)
    with pytest.raises(ValueError, match="n must be at least 1"):
        generate_tasks("seen", 0, catalog=catalog)


def test_task_summary_and_rows(catalog):
    tasks = generate_tasks("train", 50, seed=0, catalog=catalog)
    summary = task_summary(tasks)
    assert sum(summary["hops"].values()) == 50
    rows = task_rows(tasks)
    assert len(rows) == 50 and list(rows[0])[:4] == [
        "id",
        "hops",
        "level",
        "check",
    ]  # short columns first: none cut off
    assert isinstance(plots.task_summary(summary), Figure)
