"""The ablation's arms, reports of some arms, learning curves and statistics (every arm end to end, at the tiny
profile: tests/test_demo.py, on the demo's folder)."""

import pytest

from labkit.ablation import HARD, AblationConfig, rl_config, run_ablation, target_checks
from labkit.evaluate import EvalConfig, evaluate


def test_targets_are_met_only_by_a_large_enough_gap_whose_interval_clears_zero():
    gaps = {
        ("sft-trial", "sft-golden"): {
            "gap": 0.2,
            "ci95": [-0.01, 0.4],
        },  # big enough, but the interval reaches below zero
        ("sft-trial-grpo", "sft-trial"): {"gap": 0.06, "ci95": [0.01, 0.11]},
    }
    pooled = {"sft-trial": {"error_recovery_rate": float("nan"), "error_recovery_rate_ci95": [None, None]}}
    rows = [line for line in target_checks(pooled, gaps) if line.startswith("| sft-")]
    assert [row.rsplit("|", 2)[1].strip() for row in rows] == ["not met", "met", "not met"]
    assert "+0.200 [-0.010, +0.400]" in rows[0] and "n/a" in rows[2]
    assert target_checks({}, {}) == []


def test_arms_can_be_chosen_and_unknown_ones_are_refused():
    config = AblationConfig(profile="tiny", arms=("sft-trial-grpo", "sft-trial"))
    assert config.arms == ("sft-trial", "sft-trial-grpo")  # in the ablation's order
    assert config.command().endswith("--arms sft-trial,sft-trial-grpo")
    small = AblationConfig(profile="tiny", micro_batch=2)
    assert rl_config(small, "grpo-only").micro_batch == 2 and "--micro-batch 2" in small.command()
    assert "--micro-batch" not in AblationConfig(profile="tiny").command()
    with pytest.raises(ValueError, match="unknown arm"):
        AblationConfig(profile="tiny", arms=("sft-trail",))


def test_a_report_of_some_arms_trains_only_what_they_need_keeps_its_own_figures_and_draws_a_learning_curve(tmp_path):
    reports = tmp_path / "reports"
    full = reports / "figures" / "ablation_success.png"
    full.parent.mkdir(parents=True)
    full.write_bytes(b"the full report's figure")
    config = AblationConfig(
        profile="tiny",
        out=str(tmp_path / "runs"),
        report=str(reports / "ablation-some.md"),
        arms=("sft-recover",),
        curve=(1000, 4000),
    )
    assert config.sft_arms == ("sft-recover",)
    assert AblationConfig(profile="tiny", arms=("sft-trial-grpo",)).sft_arms == ("sft-trial",)
    result = run_ablation(config, progress=False)
    assert (
        set(result["runs"]) == {"sft-recover"}
        and result["rl_runs"] == {}
        and result["budgets"] == {"sft-recover": 4000}
    )
    assert not (tmp_path / "runs" / "sft-trial").exists() and not (tmp_path / "runs" / "sft-golden").exists()
    # The curve trains the 1000-token run and reads the ablation's own 4000-token run back.
    assert sorted(p.name for p in (tmp_path / "runs" / "curve").iterdir()) == ["sft-recover-1000"]
    points = result["curves"]["sft-recover"]
    assert [p["tokens"] <= b for p, b in zip(points, (1000, 4000))] == [True, True] and points[-1]["tokens"] == result[
        "runs"
    ]["sft-recover"]["data"]["tokens"]
    assert all(0 <= p["success_ci95"][0] <= p["success"] <= p["success_ci95"][1] <= 1 for p in points)
    assert [p["whole"] for p in points] == [False, False]  # both budgets fit inside the dataset
    assert full.read_bytes() == b"the full report's figure"  # left alone
    for figure in ("success", "robustness", "failures", "loss", "curve"):
        assert (reports / "figures" / f"ablation-some_{figure}.png").is_file()
    assert not (reports / "figures" / "ablation-some_grpo.png").exists()
    report = (reports / "ablation-some.md").read_text()
    assert (
        "--arms sft-recover" in report
        and "--curve 1000,4000" in report
        and "| sft-recover |" in report
        and "minus" not in report
    )
    assert "## Learning curve" in report and "figures/ablation-some_curve.png" in report


def test_a_matched_task_budget_trains_every_arm_on_its_whole_dataset(tokenizer):
    from labkit.ablation import arm_budgets, dataset_tokens

    tasks = AblationConfig(profile="tiny", budget="tasks")
    assert "--budget tasks" in tasks.command()
    whole = dataset_tokens(tasks, tokenizer)
    assert arm_budgets(tasks, whole) == whole and len(set(whole.values())) == 3 and min(whole.values()) > 4000, (
        "each its own"
    )
    tokens = AblationConfig(profile="tiny")
    matched = arm_budgets(tokens, dataset_tokens(tokens, tokenizer))
    assert set(matched.values()) == {4000}, "the tiny profile's budget, the same for every arm"
    with pytest.raises(ValueError, match="budget must be"):
        AblationConfig(profile="tiny", budget="epochs")


def test_matched_task_gaps_pair_the_arms_trained_on_their_whole_datasets(tmp_path):
    from labkit.ablation import curve_out, matched_task_gaps

    config = AblationConfig(profile="tiny", out=str(tmp_path), arms=("sft-golden", "sft-trial"), curve=(10**9,))
    totals, budgets = {"sft-golden": 5000, "sft-trial": 6000}, {"sft-golden": 4000, "sft-trial": 4000}
    # Scripted teachers stand in for the two whole-dataset adapters: real episodes, in the folders the curve writes.
    success = {}
    for arm, teacher in (("sft-golden", "teacher:golden"), ("sft-trial", "teacher:trial")):
        for split in HARD:
            out = f"{curve_out(config, arm, totals[arm])}/eval-{split}"
            success[arm, split] = evaluate(
                EvalConfig(policy=teacher, split=split, n=config.n, seeds=config.seeds, profile="tiny", out=out),
                progress=False,
            )["success"]
    gaps = matched_task_gaps(config, totals, budgets)
    assert set(gaps) == {"sft-trial minus sft-golden"}
    by_split = gaps["sft-trial minus sft-golden"]
    assert set(by_split) == {*HARD, "+".join(HARD)} and all(gap["paired"] for gap in by_split.values())
    for split in HARD:
        assert by_split[split]["gap"] == pytest.approx(success["sft-trial", split] - success["sft-golden", split])
    assert matched_task_gaps(AblationConfig(profile="tiny", out=str(tmp_path), curve=(1000,)), totals, budgets) == {}
