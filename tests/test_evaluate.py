import json

import pytest

from labkit.data import trajectory_row
from labkit.env import Answer, EnvConfig, Invalid, ToolCall, ToolEnv, build_toolset, run_episode
from labkit.evaluate import (
    FAILURES,
    METRICS,
    EvalConfig,
    bootstrap_metrics,
    classify_failure,
    evaluation_rows,
    pooled_success,
    recovery_by_policy,
    summarize,
)
from labkit.tasks import Task, generate_tasks
from labkit.teachers import GoldenTeacher, TrialTeacher


def capital_task(level=0, seed=0):
    return Task(
        id=f"cap-{level}-{seed}",
        query="What is the capital of Japan?",
        tools=["get_capital", "get_population"],
        answer="Tokyo",
        level=level,
        evolve_seed=seed,
        split="evolved" if level else "seen",
        calls=[{"name": "get_capital", "arguments": {"country": "Japan"}, "read": "capital"}],
    )


def scripted(catalog, task, actions, config=None):
    env = ToolEnv(catalog, config or EnvConfig())
    env.reset(task)
    for action in actions:
        if env.step(action).done:
            break
    row = trajectory_row(env.trajectory, "scripted")
    row["seed"] = 0
    row["failure"] = classify_failure(row)
    return row


def changed_by(catalog, level, operator):
    """A get_capital task whose evolution includes ``operator``."""
    for seed in range(200):
        task = capital_task(level, seed)
        if any(c.operator == operator for c in build_toolset(catalog, task).changes):
            return task
    raise AssertionError(f"no seed applies {operator}")


@pytest.fixture(scope="module")
def renamed(catalog):
    return changed_by(catalog, 1, "rename_parameter")


def test_each_failure_cause_is_recognised(catalog, renamed):
    ok = ToolCall("get_capital", {"country": "Japan"}, "execution")
    cases = {
        "budget_exhausted": (capital_task(), [ok, ok], EnvConfig(max_calls=1)),
        "bad_format": (capital_task(), [Invalid("??", "no action"), Invalid("??", "no action"), Answer("x")], None),
        "wrong_tool": (capital_task(), [ToolCall("get_population", {"country": "Japan"}), Answer("125")], None),
        "repeated_failing_call": (renamed, [ok, ok, Answer("Osaka")], None),
        "ignored_error": (renamed, [ok, Answer("Kyoto")], None),
        "wrong_value_or_format": (
            capital_task(),
            [ToolCall("get_capital", {"country": "Atlantis"}), ok, Answer("Kyoto")],
            None,
        ),
        "tried_but_not_used": (
            capital_task(),
            [ToolCall("get_capital", {"country": "France"}, "trial"), Answer("Kyoto")],
            None,
        ),
        "never_tried": (changed_by(catalog, 2, "change_output_shape"), [ok, Answer("ok")], None),
        "wrong_answer": (capital_task(), [ok, Answer("Kyoto")], None),
    }
    for expected, (task, actions, config) in cases.items():
        row = scripted(catalog, task, actions, config)
        assert row["failure"] == expected, (expected, row["failure"], row["errors"])
    assert scripted(catalog, capital_task(), [ok, Answer("Tokyo")])["failure"] is None
    assert set(FAILURES) >= {c for c in cases}


def rows_for(catalog, policy, tasks):
    env = ToolEnv(catalog)
    rows = []
    for task in tasks:
        row = trajectory_row(run_episode(env, policy, task), "p")
        row.update(seed=0, failure=None)
        row["failure"] = classify_failure(row)
        rows.append(row)
    return rows


def test_metrics_have_intervals_and_separate_the_teachers(catalog):
    tasks = generate_tasks("evolved", 80, seed=3, catalog=catalog)
    trial = bootstrap_metrics(rows_for(catalog, TrialTeacher(), tasks))
    golden = bootstrap_metrics(rows_for(catalog, GoldenTeacher(), tasks))
    assert trial["n"] == golden["n"] == 80
    for name in METRICS:
        low, high = trial[f"{name}_ci95"]
        assert low <= trial[name] <= high, name
    assert trial["success"] == 1.0 and golden["success"] < 0.6
    assert golden["success_ci95"][1] < trial["success_ci95"][0], "the intervals don't even overlap"
    assert trial["trials_per_episode"] >= 1 and golden["trials_per_episode"] == 0
    assert trial["error_recovery_rate"] == 1.0 and trial["trial_then_use_rate"] == 1.0
    assert bootstrap_metrics(rows_for(catalog, TrialTeacher(), tasks[:10])) == bootstrap_metrics(
        rows_for(catalog, TrialTeacher(), tasks[:10])
    )


def test_summary_has_levels_seeds_and_failures(catalog):
    rows = rows_for(catalog, GoldenTeacher(), generate_tasks("evolved", 60, seed=1, catalog=catalog))
    summary = summarize(rows)
    assert set(summary["success_by_level"]) == {"1", "2", "3", "4"}
    assert sum(summary["failures"].values()) == sum(not r["success"] for r in rows)
    assert set(summary["failures"]) <= set(FAILURES)
    json.dumps(summary)


def test_no_episodes_is_a_clear_error():
    with pytest.raises(ValueError, match="no episodes"):
        bootstrap_metrics([])


def test_labkit_eval_writes_metrics_report_and_traces(tmp_path, capsys):
    from labkit.cli import main
    from labkit.data import load_dataset_dir

    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--policy",
                "teacher:trial",
                "--split",
                "evolved",
                "--n",
                "12",
                "--seeds",
                "2",
                "--profile",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("success", "valid_call_rate", "trials_per_episode", "error_recovery_rate"):
        assert 0 <= metrics[name] and len(metrics[f"{name}_ci95"]) == 2
    assert metrics["n"] == 24 and metrics["success"] == 1.0 and set(metrics["success_by_seed"]) == {"0", "1"}
    report = (out / "report.md").read_text()
    assert (
        "robustness.png" in report
        and (out / "robustness.png").stat().st_size > 1000
        and (out / "failures.png").exists()
    )
    traces = load_dataset_dir(out / "traces")
    assert len(traces) == 24 and {"seed", "failure", "messages", "phases"} <= set(traces.column_names)
    # Another policy into the same folder is refused, not mixed
    # in; fewer tasks of the same evaluation are its first ones.
    assert (
        main(["eval", "--policy", "random", "--split", "evolved", "--n", "12", "--seeds", "2", "--out", str(out)]) == 2
    )
    assert "holds another run (policy: 'teacher:trial' there, 'random' now)" in capsys.readouterr().err
    assert (
        main(["eval", "--policy", "teacher:trial", "--split", "evolved", "--n", "5", "--seeds", "1", "--out", str(out)])
        == 0
    )
    assert json.loads((out / "metrics.json").read_text())["n"] == 5 and len(load_dataset_dir(out / "traces")) == 5
    # What reports pool across splits is the same episodes, not the whole log (which still holds the larger run).
    smaller = EvalConfig(policy="teacher:trial", split="evolved", n=5, seeds=1, profile="cpu", out=str(out))
    assert [(r["seed"], r["task_id"]) for r in evaluation_rows(smaller)] == [
        (0, f"evolved-0-{i:05d}") for i in range(5)
    ]


def test_a_killed_evaluation_resumes_without_redoing_episodes(tmp_path):
    import subprocess
    import sys
    import time

    from labkit.data import read_rows

    out = tmp_path / "eval"
    command = [
        sys.executable,
        "-m",
        "labkit.cli",
        "eval",
        "--policy",
        "teacher:trial",
        "--split",
        "train",
        "--n",
        "3000",
        "--seeds",
        "1",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "episodes.jsonl"
    deadline = time.monotonic() + 60
    while not (log.exists() and len(list(read_rows(log))) >= 50):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    before = [r["task_id"] for r in read_rows(log)]
    assert 50 <= len(before) < 3000
    small = command[:-6] + ["--n", str(len(before) + 20), "--seeds", "1", "--out", str(out)]
    assert subprocess.run(small, capture_output=True, timeout=300).returncode == 0
    after = [r["task_id"] for r in read_rows(log)]
    assert after[: len(before)] == before, "finished episodes are kept, not redone"
    assert len(after) == len(set(after)) == len(before) + 20


def test_sample_failures_picks_failed_episodes_of_one_cause(catalog):
    from labkit.evaluate import sample_failures

    rows = rows_for(catalog, GoldenTeacher(), generate_tasks("evolved", 40, seed=5, catalog=catalog))
    label = next(r["failure"] for r in rows if r["failure"])
    picked = sample_failures(rows, label, k=3)
    assert picked and all(r["failure"] == label for r in picked)
    assert sample_failures(rows, None, k=3, seed=1) == sample_failures(rows, None, k=3, seed=1)
    assert sample_failures(rows, "no_such_cause") == []


def test_pooled_success_weights_by_episodes():
    results = {
        ("a", "evolved"): {"success": 1.0, "n": 1},
        ("a", "unseen"): {"success": 0.0, "n": 3},
        ("a", "seen"): {"success": 1.0, "n": 9},
    }
    assert pooled_success(results, ["evolved", "unseen"]) == {"a": 0.25}


def test_recovery_pools_splits_by_episodes_and_names_the_commonest_failure():
    results = {
        ("a", "evolved"): {"n": 8, "error_recovery_rate": 0.0, "failures": {"ignored_error": 1, "wrong_answer": 3}},
        ("a", "unseen"): {"n": 8, "error_recovery_rate": 0.5, "failures": {"ignored_error": 1}},
        ("b", "seen"): {"n": 4, "error_recovery_rate": float("nan"), "failures": {}},
    }
    assert recovery_by_policy(results) == {"a": (0.25, "wrong_answer"), "b": (None, None)}
