import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import FIXTURES
from datasets import Dataset
from matplotlib.figure import Figure

from labkit import plots
from labkit.cli import main
from labkit.data import DatasetFileError, append_rows, dataset_stats, load_dataset_dir, read_rows, write_dataset
from labkit.tasks import generate_tasks, load_tasks, save_tasks
from labkit.teach import (
    TeachConfig,
    dataset_card,
    learner_slips,
    run_teacher,
    teach,
    teacher_pair,
    teacher_success,
)
from labkit.tools import load_catalog


def test_teach_writes_identical_bytes_for_the_same_seed(tmp_path):
    for name in ("a", "b"):
        assert (
            main(
                [
                    "teach",
                    "--teacher",
                    "trial",
                    "--split",
                    "train",
                    "--n",
                    "40",
                    "--seed",
                    "3",
                    "--out",
                    str(tmp_path / "out"),
                ]
            )
            == 0
        )
        (tmp_path / "out").rename(tmp_path / name)
    for file in ("data.parquet", "README.md"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()


def test_slips_and_quoted_types_are_chosen_on_the_command_line_and_named_in_the_card(tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "teach",
                "--teacher",
                "recover",
                "--split",
                "train",
                "--n",
                "20",
                "--mistake-rate",
                "1",
                "--slips",
                "missing,lookalike",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "--mistake-rate 1.0 --slips missing,lookalike" in (out / "README.md").read_text()
    assert "--slips" not in TeachConfig(teacher="trial").command()
    typed = tmp_path / "typed"
    assert (
        main(["teach", "--teacher", "trial", "--n", "6", "--quote-types", "--probe", "example", "--out", str(typed)])
        == 0
    )
    card = (typed / "README.md").read_text()
    assert "--quote-types --probe example --out" in card and "With `--quote-types`" in card and " (string)" in card
    assert "With `--probe example`" in card and "is probed empty" in card
    assert "--probe" not in TeachConfig(teacher="recover", probe="example").command(), "it has no probes"
    assert "--quote-types" not in TeachConfig(teacher="recover", quote_types=True).command(), "it has no probes"
    golden = dataset_card([], [], TeachConfig(teacher="golden", quote_types=True))
    assert "--quote-types" not in golden, "a card never claims what its teacher cannot do"
    assert main(["teach", "--slips", "name,tpyo", "--out", str(tmp_path / "bad")]) == 2
    assert "unknown slip(s) ['tpyo']" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_the_trial_teacher_slips_a_learners_own_failed_calls_and_recovers_from_them(tmp_path, capsys):
    tasks_file, episodes = tmp_path / "train.jsonl", tmp_path / "learner" / "episodes.jsonl"
    save_tasks(generate_tasks("train", 10, seed=5), tasks_file)
    tasks, catalog = load_tasks(tasks_file), load_catalog()
    # The learner: an agent that gets a parameter's name or shape wrong, or leaves one out, on every call, then puts
    # it right. A left-out parameter must not be taken for one the tool now requires.
    learner = TeachConfig(
        teacher="recover", mistake_rate=1.0, slips=("name", "format", "missing"), tasks_file=str(tasks_file)
    )
    append_rows(episodes, run_teacher(learner, tasks, catalog, progress=False)[0])
    mistakes = learner_slips(episodes, tasks)
    assert sum(map(len, mistakes.values())) >= len(tasks)

    out = tmp_path / "out"
    argv = ["teach", "--tasks", str(tasks_file), "--mistake-rate", "0", "--learner-episodes", str(episodes)]
    assert main([*argv, "--out", str(out)]) == 0
    data = load_dataset_dir(out)
    assert len(data) == len(tasks), "every trajectory, learner's slips and all, replays to success"
    for row in data:
        slipped = [
            (m["tool_calls"][0]["function"]["name"], json.loads(m["tool_calls"][0]["function"]["arguments"]))
            for m in row["messages"]
            if m.get("train") is False
        ]
        assert slipped and all(call in mistakes[row["task_id"]] for call in slipped), "no slip but the learner's"
        assert row["n_recoveries"] == row["n_errors"] >= len(slipped)
    card = (out / "README.md").read_text()
    assert f"--learner-episodes {episodes} --out" in card and "With `--learner-episodes" in card

    assert main([*argv[:-1], str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "bad")]) == 2
    assert "no such episodes file" in capsys.readouterr().err
    with pytest.raises(ValueError, match="none of its episodes is on these tasks"):
        learner_slips(episodes, generate_tasks("evolved", 2))
    append_rows(tmp_path / "junk.jsonl", [{"task_id": tasks[0].id}])
    with pytest.raises(ValueError, match="line 1: not an episode row"):
        learner_slips(tmp_path / "junk.jsonl", tasks)


def test_the_card_reports_what_a_learner_needs(tmp_path, tokenizer):
    out = teach(
        TeachConfig(teacher="trial", split="evolved", n=30, seed=1, out=str(tmp_path / "d")),
        progress=False,
        tokenizer=tokenizer,
    )
    card = (out / "README.md").read_text()
    for needle in (
        "| trajectories | 30 |",
        "could not script (no gold `calls`), left out | 0",
        "trials per episode",
        "errors outside trials, recovered",
        "tokens per trajectory, median / p95",
        "## An error and the turn after it",
        "labkit teach --teacher trial --split evolved",
        "probes it, by default with no arguments",
        "trials that repeat the next real call of their tool (teach nothing) | 0 of",
    ):
        assert needle in card, needle


def test_rows_are_what_trl_sft_expects(tmp_path, tokenizer):
    out = teach(TeachConfig(teacher="golden", n=12, seed=2, out=str(tmp_path / "g")), progress=False)
    data = load_dataset_dir(out)
    assert isinstance(data, Dataset) and len(data) == 12
    assert {"messages", "tools", "task_id", "split", "level", "policy", "phases", "success"} <= set(data.column_names)
    row = data[0]
    assert row["policy"] == "teacher:golden" and row["success"] and row["level"] == 0
    # What TRL's SFTTrainer does with a row: a JSON-string `tools` column and the chat template.
    rendered = tokenizer.apply_chat_template(row["messages"], tools=json.loads(row["tools"]), tokenize=False)
    assert "<execute>" in rendered and "<answer>" in rendered and "<tool_call>" in rendered


def test_user_tools_and_tasks_through_teach(tmp_path):
    code = main(
        [
            "teach",
            "--teacher",
            "trial",
            "--tools-module",
            str(FIXTURES / "user_tools.py"),
            "--tasks",
            str(FIXTURES / "user_tasks.jsonl"),
            "--out",
            str(tmp_path / "u"),
        ]
    )
    assert code == 0
    data = load_dataset_dir(tmp_path / "u")
    assert sorted(data["task_id"]) == ["tide-1"], (
        "the task without a gold path can't be scripted and is reported, not kept"
    )
    assert "tide-2" in (tmp_path / "u" / "README.md").read_text()


def test_write_dataset_replaces_atomically(tmp_path):
    out = write_dataset([{"a": 1}], tmp_path / "d", "card one")
    write_dataset([{"a": 2}, {"a": 3}], out, "card two")
    assert len(load_dataset_dir(out)) == 2 and (out / "README.md").read_text() == "card two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"], "no staging or backup folders left behind"
    # Killed while writing: a staging folder stays behind; killed between the two renames, only the backup is there.
    (tmp_path / ".d.k1ll3d_x").mkdir()
    out.rename(tmp_path / ".d.old")
    write_dataset([{"a": 4}], out, "card three")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"], "leftovers of a killed write are cleaned up"


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetFileError, match="labkit teach"):
        load_dataset_dir(tmp_path / "nothing")


def test_corrupt_datasets_are_typed_errors_that_name_the_file(tmp_path):
    good = write_dataset([{"a": 1}], tmp_path / "good", "card") / "data.parquet"
    (tmp_path / "cut.parquet").write_bytes(good.read_bytes()[:-20])
    (tmp_path / "text.parquet").write_text("not parquet")
    for name in ("cut.parquet", "text.parquet"):
        with pytest.raises(DatasetFileError, match=f"{tmp_path / name} cannot be read as trajectories"):
            load_dataset_dir(tmp_path / name)
    (tmp_path / "bom.jsonl").write_text('{"a": 1}\n', encoding="utf-8-sig")
    assert load_dataset_dir(tmp_path / "bom.jsonl")["a"] == [1]
    for name, line in (
        ("number.jsonl", b"5\n"),
        ("latin1.jsonl", b'{"a": "\xff"}\n'),
        ("deep.jsonl", b"[" * 5000 + b"]" * 5000 + b"\n"),
    ):
        (tmp_path / name).write_bytes(line)
        with pytest.raises(DatasetFileError, match=f"{name}:1 is not"):
            load_dataset_dir(tmp_path / name)


def test_jsonl_log_survives_a_torn_last_line(tmp_path):
    log = tmp_path / "log.jsonl"
    append_rows(log, [{"id": 1}, {"id": 2}])
    with log.open("a") as f:
        f.write('{"id": 3, "half')  # a kill in the middle of a write
    assert [r["id"] for r in read_rows(log)] == [1, 2]
    assert [r["id"] for r in read_rows(log, repair=True)] == [1, 2]
    append_rows(log, [{"id": 3}])
    assert [r["id"] for r in read_rows(log)] == [1, 2, 3]
    log.write_text('{"id": 1}\n{broken\n{"id": 2}\n')
    with pytest.raises(DatasetFileError, match="log.jsonl:2"):
        list(read_rows(log))


def test_a_killed_teach_leaves_the_previous_dataset_whole(tmp_path):
    out = tmp_path / "d"
    assert main(["teach", "--teacher", "golden", "--n", "5", "--out", str(out)]) == 0
    before = (out / "data.parquet").read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-m", "labkit.cli", "teach", "--teacher", "trial", "--n", "20000", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(6)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "data.parquet").read_bytes() == before


def test_dataset_stats_and_comparison_plot(catalog, tokenizer):
    rows = [teacher_pair(catalog, t)["trial"] for t in generate_tasks("train", 6, seed=1, catalog=catalog)]
    stats = dataset_stats(rows, tokenizer)
    assert len(stats["tokens per trajectory"]) == 6 and min(stats["tokens per trajectory"]) > 100
    assert isinstance(plots.dataset_comparison({"trial": stats}), Figure)


def test_teacher_success_rates(catalog):
    assert teacher_success(catalog, "trial", "evolved", 2, 20) == 1.0
    assert teacher_success(catalog, "golden", "evolved", 2, 20) < 0.8
