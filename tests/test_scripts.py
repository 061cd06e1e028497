"""The scripts under scripts/ run and say what they measured."""

import re
import subprocess
import sys
from pathlib import Path

from labkit.data import append_rows, trajectory_row
from labkit.env import ToolCall, ToolEnv
from labkit.evaluate import EvalConfig, evaluate
from labkit.tasks import generate_tasks, save_tasks

ROOT = Path(__file__).resolve().parents[1]


def test_array_after_probe_reads_both_contexts_of_every_probed_array_tool(tmp_path):
    out = tmp_path / "trial-unseen"
    evaluate(EvalConfig(policy="teacher:trial", split="unseen", n=30, seeds=1, profile="tiny", out=str(out)), False)
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "array_after_probe.py"), "--policy", "tiny", "--episodes", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = re.findall(
        r"^(after the probe|without it): mean P\('\['\) (\S+), above 0.5 in (\d+) of (\d+) episodes$", done.stdout, re.M
    )
    assert [line[0] for line in lines] == ["after the probe", "without it"]
    assert all(0 <= float(mean) <= 1 for _, mean, _, _ in lines)
    assert lines[0][3] == lines[1][3] and int(lines[0][3]) >= 3, "the trial teacher probes the stats tools"


def test_the_fuzzer_reaches_every_input_layer_and_finds_no_crash():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fuzz_inputs.py"), "--n", "400", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    tried = dict(re.findall(r"^(\S+)\s+([\d,]+) inputs\s+0 crashes", done.stdout, re.M))
    assert tried == {"parse_turn": "400", "ToolEnv.step": "400", "load_tasks": "40", "load_dataset_dir": "10"}


def test_after_error_counts_what_follows_each_failed_call(tmp_path, catalog):
    task = generate_tasks("seen", 1, seed=4, level=0)[0]
    call = task.calls[0]
    env = ToolEnv(catalog)
    env.reset(task)
    wrong = {"no_such_parameter": 1}
    for action in (
        ToolCall(call.name, wrong, "execution", "a guess"),
        ToolCall(call.name, wrong, "execution", "The error says it is no parameter. Fixing it."),
        ToolCall(call.name, dict(call.arguments), "execution", "as documented"),
    ):
        env.step(action)
    append_rows(tmp_path / "run" / "episodes.jsonl", [trajectory_row(env.trajectory, "hand")])
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "after_error.py"), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # Two failed calls: the first is repeated as is, the second is followed by the documented call, which works.
    assert "| unknown_parameter | 2 | 1 | 0 | 1 | 0 |" in done.stdout
    assert "same call again under a reason that announces a fix: 1 of 1" in done.stdout


def test_fix_or_repeat_scores_both_turns_on_trained_and_new_states(tmp_path):
    tasks = save_tasks(generate_tasks("train", 20, seed=5), tmp_path / "new.jsonl")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fix_or_repeat.py"), "--policy", "tiny", "--max-states", "4"]
        + ["--data", str(ROOT / "data" / "trajectories" / "trial-train"), "--tasks", str(tasks)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    sides = re.findall(
        r"^(trained on|new tasks) .*likelier than the same call again in (\d+) of (\d+) states$", done.stdout, re.M
    )
    assert [side[0] for side in sides] == ["trained on", "new tasks"]
    assert all(0 <= int(wins) <= int(n) and n == "4" for _, wins, n in sides), done.stdout
