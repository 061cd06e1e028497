"""The ablation (SFT and GRPO arms) end to end at the tiny profile, and its statistics."""

import json

import pytest

from labkit.ablation import ARMS, SPLITS, AblationConfig, rl_config, run_ablation, success_gap


def test_success_gap_has_a_bootstrap_interval():
    better = [{"success": True}] * 30 + [{"success": False}] * 10
    worse = [{"success": True}] * 10 + [{"success": False}] * 30
    gap = success_gap(better, worse)
    assert gap["gap"] == pytest.approx(0.5) and 0.2 < gap["ci95"][0] < 0.5 < gap["ci95"][1] < 0.8
    assert success_gap([], worse)["ci95"] == [None, None]


def test_tiny_ablation_trains_evaluates_reports_and_resumes(tmp_path):
    config = AblationConfig(profile="tiny", out=str(tmp_path / "runs"), report=str(tmp_path / "reports" / "ablation.md"), ship=str(tmp_path / "adapters"))
    result = run_ablation(config, progress=False)
    assert set(result["metrics"]) == {(arm, split) for arm in ARMS for split in SPLITS}
    golden, trial = (result["runs"][arm]["data"]["tokens"] for arm in ("sft-golden", "sft-trial"))
    assert abs(golden - trial) < 512 and max(golden, trial) <= result["budget"]
    report = (tmp_path / "reports" / "ablation.md").read_text()
    for gap in ("sft-trial minus sft-golden", "sft-trial-grpo minus sft-trial", "grpo-only minus base"):
        assert gap in report
    assert "labkit ablation --profile tiny" in report
    assert set(result["rl_runs"]) == {"sft-trial-grpo", "grpo-only"}
    assert result["rl_runs"]["sft-trial-grpo"]["config"]["init"] == f"{config.out}/sft-trial"
    for figure in ("success", "robustness", "failures", "loss", "grpo"):
        assert (tmp_path / "reports" / "figures" / f"ablation_{figure}.png").is_file()
    for arm in ("sft-golden", "sft-trial", "sft-trial-grpo", "grpo-only"):
        assert (tmp_path / "adapters" / arm / "adapter_model.safetensors").is_file()
    shipped = json.loads((tmp_path / "adapters" / "sft-trial-grpo" / "adapter_config.json").read_text())
    assert shipped["base_model_name_or_path"] == "../sft-trial"  # loads from the shipped SFT adapter, wherever they move
    assert len(list((tmp_path / "adapters" / "sft-trial-grpo" / "rollouts").glob("step-*.jsonl"))) == 1
    summary = json.loads((tmp_path / "runs" / "ablation.json").read_text())
    assert summary["sft-trial/unseen"]["n"] == config.n * config.seeds
    # A second run reads everything back: same numbers, nothing retrained.
    again = run_ablation(config, progress=False)
    assert again["runs"] == result["runs"] and again["rl_runs"] == result["rl_runs"]
    assert {k: m["success"] for k, m in again["metrics"].items()} == {k: m["success"] for k, m in result["metrics"].items()}


def test_arms_can_be_chosen_and_unknown_ones_are_refused():
    config = AblationConfig(profile="tiny", arms=("sft-trial-grpo", "sft-trial"))
    assert config.arms == ("sft-trial", "sft-trial-grpo")  # in the ablation's order
    assert config.command().endswith("--arms sft-trial,sft-trial-grpo")
    small = AblationConfig(profile="tiny", micro_batch=2)
    assert rl_config(small, "grpo-only").micro_batch == 2 and "--micro-batch 2" in small.command()
    assert "--micro-batch" not in AblationConfig(profile="tiny").command()
    with pytest.raises(ValueError, match="unknown arm"):
        AblationConfig(profile="tiny", arms=("sft-trail",))


def test_a_report_of_some_arms_trains_only_what_they_need_and_keeps_its_own_figures(tmp_path):
    reports = tmp_path / "reports"
    full = reports / "figures" / "ablation_success.png"
    full.parent.mkdir(parents=True)
    full.write_bytes(b"the full report's figure")
    config = AblationConfig(profile="tiny", out=str(tmp_path / "runs"), report=str(reports / "ablation-grpo-only.md"), arms=("grpo-only",))
    assert config.sft_arms == ()
    assert AblationConfig(profile="tiny", arms=("sft-trial-grpo",)).sft_arms == ("sft-trial",)
    result = run_ablation(config, progress=False)
    assert result["runs"] == {} and set(result["rl_runs"]) == {"grpo-only"}
    assert not (tmp_path / "runs" / "sft-trial").exists() and not (tmp_path / "runs" / "sft-golden").exists()
    assert full.read_bytes() == b"the full report's figure"  # left alone
    for figure in ("success", "robustness", "failures", "grpo"):
        assert (reports / "figures" / f"ablation-grpo-only_{figure}.png").is_file()
    assert not (reports / "figures" / "ablation-grpo-only_loss.png").exists()
    report = (reports / "ablation-grpo-only.md").read_text()
    assert "--arms grpo-only" in report and "| grpo-only |" in report and "SFT arms" not in report and "minus" not in report
    assert "figures/ablation-grpo-only_grpo.png" in report and "zero-advantage groups" in report
