"""Paired differences in success: the statistics, and `labkit compare` on real evaluation logs."""

import json

import pytest

from labkit.cli import main
from labkit.evaluate import EvalConfig, evaluate
from labkit.gaps import compare_evaluations, success_gap


def test_success_gap_has_a_bootstrap_interval():
    better = [{"success": True}] * 30 + [{"success": False}] * 10
    worse = [{"success": True}] * 10 + [{"success": False}] * 30
    gap = success_gap(better, worse)
    assert gap["gap"] == pytest.approx(0.5) and 0.2 < gap["ci95"][0] < 0.5 < gap["ci95"][1] < 0.8 and not gap["paired"]
    assert success_gap([], worse)["ci95"] == [None, None]


def test_a_gap_over_the_same_episodes_is_paired_and_tighter():
    """Two arms that differ on 8 of 80 shared episodes: pairing sees a sure +0.1, unpaired it is lost in the noise."""
    keys = [{"eval_split": "evolved", "seed": s, "task_id": f"t{i}"} for s in range(2) for i in range(40)]
    hard = [i % 2 == 0 for i in range(80)]
    a = [{**k, "success": h or i < 16} for i, (k, h) in enumerate(zip(keys, hard))]
    b = [{**k, "success": h} for k, h in zip(keys, hard)]
    paired, unpaired = success_gap(a, list(reversed(b))), success_gap(a, [{"success": r["success"]} for r in b])
    assert paired["paired"] and not unpaired["paired"] and paired["gap"] == unpaired["gap"] == pytest.approx(0.1)
    assert paired["ci95"][0] > 0 > unpaired["ci95"][0], "only the paired interval excludes zero"


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory):
    """Real episodes: the scripted trial and golden teachers on evolved and unseen tools, 6 tasks each; and the trial
    teacher on 8 evolved tasks (a larger run that shares the first 6)."""
    root = tmp_path_factory.mktemp("evaluations")
    folders = {}
    for teacher, split, n in (
        ("trial", "evolved", 6),
        ("trial", "unseen", 6),
        ("golden", "evolved", 6),
        ("golden", "unseen", 6),
        ("trial", "evolved", 8),
    ):
        out = root / f"{teacher}-{split}-{n}"
        metrics = evaluate(
            EvalConfig(policy=f"teacher:{teacher}", split=split, n=n, seeds=1, profile="tiny", out=str(out)),
            progress=False,
        )
        folders[teacher, split, n] = (out, metrics["success"])
    return folders


def test_compare_sets_evaluations_against_each_other_pair_by_pair_and_pooled(evaluations, tmp_path, capsys):
    (trial_ev, s_te), (trial_un, s_tu) = evaluations["trial", "evolved", 6], evaluations["trial", "unseen", 6]
    (golden_ev, s_ge), (golden_un, s_gu) = evaluations["golden", "evolved", 6], evaluations["golden", "unseen", 6]
    rows = compare_evaluations([trial_ev, trial_un], [golden_ev, golden_un])
    assert [row.gap for row in rows] == pytest.approx([s_te - s_ge, s_tu - s_gu, (s_te + s_tu - s_ge - s_gu) / 2])
    assert all(row.paired and row.left_out == 0 for row in rows) and [row.episodes for row in rows] == [6, 6, 12]
    assert (
        rows[-1].label == "pooled"
        and rows[0].label == "evaluations0/trial-evolved-6 minus evaluations0/golden-evolved-6"
    )
    assert rows[0].gap > 0 and rows[0].ci95[0] <= rows[0].gap <= rows[0].ci95[1], "the trial teacher copes with changes"

    plot = tmp_path / "figures" / "gaps.png"
    assert (
        main(["compare", str(trial_ev), str(trial_un), "--minus", str(golden_ev), str(golden_un), "--plot", str(plot)])
        == 0
    )
    printed = capsys.readouterr().out
    assert f"| pooled | {(s_te + s_tu) / 2:.3f} | {(s_ge + s_gu) / 2:.3f} | {rows[-1].gap:+.3f} [" in printed
    assert "12 paired |" in printed and plot.stat().st_size > 0


def test_a_larger_run_is_compared_on_the_episodes_both_played(evaluations):
    (larger, _), (smaller, success) = evaluations["trial", "evolved", 8], evaluations["trial", "evolved", 6]
    (row,) = compare_evaluations([larger], [smaller])
    assert row.paired and row.episodes == 6 and row.left_out == 2
    assert row.gap == 0 and row.success_a == row.success_b == pytest.approx(success), "the same teacher, same episodes"


def test_bad_comparisons_say_what_to_do(evaluations, tmp_path, capsys):
    good = str(evaluations["trial", "evolved", 6][0])
    assert main(["compare", good, good, "--minus", good]) == 2
    assert "as many folders after --minus as before it (got 2 and 1)" in capsys.readouterr().err
    assert main(["compare", good, "--minus", str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err
    assert "no evaluation at" in error and "labkit eval --out" in error
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "episodes.jsonl").write_text("")
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "episodes.jsonl").write_text('{"success": true}\n{"succ')
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "episodes.jsonl").write_text(json.dumps({"reward": 1.0}) + "\n")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "episodes.jsonl").write_bytes(b"\xff\xfe not json\n")
    for folder, message in (
        ("empty", "holds no episodes"),
        ("other", "has no 'success'"),
        ("garbage", "is not valid JSON"),
    ):
        assert main(["compare", good, "--minus", str(tmp_path / folder)]) == 2
        assert message in capsys.readouterr().err
    (row,) = compare_evaluations([tmp_path / "torn"], [tmp_path / "torn"])  # a torn last line (a kill) is dropped
    assert row.episodes == 1 and not row.paired
