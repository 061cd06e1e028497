import json
import os
import subprocess
import sys

import pytest
from conftest import FIXTURES

from labkit.cli import main


def run_cli(*args, env=None):
    """The installed console script, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "labkit.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_doctor_prints_the_machine_and_a_profile():
    result = run_cli("doctor")
    assert result.returncode == 0, result.stderr
    assert "recommended profile:" in result.stdout and "CPU cores" in result.stdout


def test_tasks_generate_is_byte_identical_per_seed(tmp_path):
    for name in ("a", "b"):
        assert (
            main(
                [
                    "tasks",
                    "generate",
                    "--split",
                    "evolved",
                    "--n",
                    "30",
                    "--seed",
                    "7",
                    "--out",
                    str(tmp_path / f"{name}.jsonl"),
                ]
            )
            == 0
        )
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(rows) == 30 and all(1 <= r["level"] <= 4 for r in rows)


def test_tools_list_and_family_filter(capsys):
    assert main(["tools", "list"]) == 0
    out = capsys.readouterr().out
    assert "tools in 9 families" in out and "unseen: never trained on" in out
    assert main(["tools", "list", "--family", "stats"]) == 0
    assert "get_current_weather" not in capsys.readouterr().out


def test_tools_evolve_shows_the_old_docs_the_change_and_the_error(capsys):
    assert main(["tools", "evolve", "get_capital", "--level", "1", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "The agent still reads" in out and "What really changed" in out and "Calling it as documented" in out


def test_tools_call_reports_errors_with_exit_1(capsys):
    assert main(["tools", "call", "get_capital", "--args", '{"country": "Japan"}']) == 0
    assert "Tokyo" in capsys.readouterr().out
    assert main(["tools", "call", "get_capital", "--args", '{"nation": "Japan"}']) == 1
    assert "unexpected parameter 'nation'" in capsys.readouterr().out
    assert main(["tools", "call", "get_capital", "--args", "{oops"]) == 2


def test_user_tools_module_is_accepted(capsys):
    assert main(["tools", "list", "--tools-module", str(FIXTURES / "user_tools.py"), "--family", "user_tools"]) == 0
    assert "high_tide(port)" in capsys.readouterr().out


def test_bad_input_gives_a_message_not_a_traceback(tmp_path):
    result = run_cli("tools", "list", "--tools-module", str(tmp_path / "missing.py"))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "missing.py" in result.stderr
    result = run_cli("tasks", "generate", "--split", "seen", "--level", "3", "--out", str(tmp_path / "x.jsonl"))
    assert result.returncode == 2 and "seen split is level 0" in result.stderr


def test_rl_takes_a_smaller_micro_batch_for_small_machines():
    from labkit.cli import build_parser

    assert build_parser().parse_args(["rl", "--out", "x"]).micro_batch == 4
    assert build_parser().parse_args(["rl", "--out", "x", "--micro-batch", "2"]).micro_batch == 2


def test_a_grpo_runs_recorded_command_rebuilds_the_same_run():
    """The command a run folder records (its resume hint) names every option the run was given."""
    import shlex

    from labkit.cli import build_parser, rl_config
    from labkit.rewards import RewardConfig
    from labkit.rl import RLRunConfig

    run = RLRunConfig(
        init="runs/sft",
        profile="tiny",
        out="runs/rl",
        tasks="my/tasks.jsonl",
        engine="vllm",
        micro_batch=2,
        beta=0.1,
        seed=3,
        rewards=RewardConfig(format=0.0, max_trials=2),
    )
    command = run.command()
    assert "--tasks my/tasks.jsonl" in command and "--engine vllm" in command and "--reward max_trials=2" in command
    assert rl_config(build_parser().parse_args(shlex.split(command)[1:])) == run
    assert (
        RLRunConfig(init="runs/sft", profile="tiny", out="o").command()
        == "labkit rl --init runs/sft --profile tiny --steps 2 --out o"
    )


def _subcommands(parser, prefix=()):
    import argparse

    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, (*prefix, name))


def test_every_help_page_prints(capsys):
    import pytest

    from labkit.cli import build_parser

    commands = list(_subcommands(build_parser()))
    assert ("eval",) in commands and ("tools", "call") in commands
    for command in commands:
        with pytest.raises(SystemExit) as exit:
            main([*command, "--help"])
        assert exit.value.code == 0, command
        assert "usage: labkit" in capsys.readouterr().out


def test_a_tools_module_that_exits_or_hangs_when_imported_is_a_clear_error(tmp_path, capsys, monkeypatch):
    from labkit.tools import registry

    monkeypatch.setattr(registry, "IMPORT_TIMEOUT_S", 0.3)
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "sleeps.py").write_text("import time\ntime.sleep(5)\n")
    assert main(["tools", "list", "--tools-module", str(tmp_path / "exits.py")]) == 2
    assert "exits.py called sys.exit(3); a tools module must not exit when imported" in capsys.readouterr().err
    assert main(["tools", "list", "--tools-module", str(tmp_path / "sleeps.py")]) == 2
    assert "sleeps.py did not finish within 0.3 s" in capsys.readouterr().err


def test_ablation_reads_a_learning_curve_and_refuses_a_bad_one_before_training(tmp_path):
    from labkit.ablation import token_counts

    assert token_counts("25k, 50000,1.5k") == (25000, 50000, 1500) and token_counts(None) == ()
    with pytest.raises(SystemExit, match="--curve takes token counts"):
        main(["ablation", "--profile", "tiny", "--curve", "25k,lots", "--out", str(tmp_path / "runs")])
    with pytest.raises(SystemExit, match="learning-curve budgets must be positive"):
        main(["ablation", "--profile", "tiny", "--curve", "0", "--out", str(tmp_path / "runs")])
    assert not (tmp_path / "runs").exists(), "nothing trained"
