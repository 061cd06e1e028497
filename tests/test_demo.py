"""`labkit demo`: the whole course headless (data, SFT, GRPO, evaluation, report), that it resumes, and that the
full ablation on its folder (tests/test_ablation.py has the rest) trains only the arms the demo lacks."""

import json
from dataclasses import replace
from pathlib import Path

from labkit.ablation import ARMS, DATASETS, GAPS, HARD, POOLED, SPLITS, TRAIN_TASKS, arm_rows, run_ablation
from labkit.cli import main
from labkit.demo import FULL, DemoConfig, make_data, ordering, relation_to_full
from labkit.teach import TeachConfig, teach

LAB = Path(__file__).resolve().parent.parent


def test_demo_runs_the_course_headless_resumes_and_grows_into_the_full_ablation(tmp_path, capsys):
    out, report = tmp_path / "runs", tmp_path / "reports" / "ablation.md"
    argv = ["demo", "--profile", "tiny", "--out", str(out), "--report", str(report)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| sft-trial-grpo |" in printed and f"labkit view {out}" in printed
    record = json.loads((out / "demo.json").read_text())
    assert set(record["seconds"]) == {"data", "sft", "grpo", "evaluation", "total"}
    for dataset in ("trial-train", "golden-train"):
        assert (out / "data" / "trajectories" / dataset / "data.parquet").is_file()
    text = report.read_text()
    assert f"--data {out}/data" in text and "--rl-steps 1" in text  # the report names the command that reproduces it
    assert "grpo-only" not in text
    for figure in ("success", "robustness", "failures", "loss", "grpo"):
        assert (report.parent / "figures" / f"ablation_{figure}.png").is_file()
    # It ends beside the shipped full ablation's figures (run from the lab's folder, where they are).
    relation = text[text.index("## How this demo relates to the full ablation") :]
    full = json.loads((LAB / FULL[0]).read_text())
    golden = full["success"][f"sft-golden/{POOLED}"]["success"]
    demo = DemoConfig(profile="tiny", out=str(out), report=str(report))
    rows = arm_rows(demo.ablation(), "sft-golden", HARD)
    golden_here = sum(r["success"] for r in rows) / len(rows)
    assert f"| sft-golden | {golden_here:.3f} | {golden:.3f} |" in relation
    assert f"Ordering in the full table (`{full['command']}`)" in relation

    # Run again, as after an interruption: every stage is read back, nothing retrains.
    card = (out / "sft-trial-grpo" / "run_card.json").read_bytes()
    success = json.loads(report.with_suffix(".json").read_text())["success"]
    assert main(argv) == 0
    assert (out / "sft-trial-grpo" / "run_card.json").read_bytes() == card
    assert json.loads(report.with_suffix(".json").read_text())["success"] == success  # the same numbers
    again = json.loads((out / "demo.json").read_text())["seconds"]
    assert again["sft"] + again["grpo"] < record["seconds"]["sft"] + record["seconds"]["grpo"]

    # Every arm of the ablation on the demo's folder, with SFT-recover's data beside the demo's: the demo's four
    # arms are read back (same numbers), SFT-recover and GRPO-only train, and the adapters ship.
    teach(
        TeachConfig(
            teacher="recover", tasks_file=f"{demo.data}/{TRAIN_TASKS}", out=f"{demo.data}/{DATASETS['sft-recover']}"
        ),
        progress=False,
    )
    full_report, ship = tmp_path / "reports" / "full.md", tmp_path / "adapters"
    config = replace(demo.ablation(), arms=ARMS, report=str(full_report), ship=str(ship))
    result = run_ablation(config, progress=False)
    assert (out / "sft-trial-grpo" / "run_card.json").read_bytes() == card
    summary = json.loads(full_report.with_suffix(".json").read_text())
    assert {k: v for k, v in summary["success"].items() if k in success} == success
    assert set(result["metrics"]) == {(arm, split) for arm in ARMS for split in SPLITS}
    golden, trial = (result["runs"][arm]["data"]["tokens"] for arm in ("sft-golden", "sft-trial"))
    assert abs(golden - trial) < 512 and max(golden, trial) <= min(result["budgets"].values())
    text = full_report.read_text()
    assert all(f"{arm} minus {minus}" in text for arm, minus in GAPS)
    assert "| sft-trial minus sft-golden | " in text  # a difference on each split and pooled
    assert "labkit ablation --profile tiny" in text and "zero-advantage groups" in text
    assert set(result["rl_runs"]) == {"sft-trial-grpo", "grpo-only"}
    assert result["rl_runs"]["sft-trial-grpo"]["config"]["init"] == f"{config.out}/sft-trial"
    for figure in ("success", "robustness", "failures", "loss", "grpo"):
        assert (full_report.parent / "figures" / f"full_{figure}.png").is_file()
    for arm in ("sft-golden", "sft-recover", "sft-trial", "sft-trial-grpo", "grpo-only"):
        assert (ship / arm / "adapter_model.safetensors").is_file()
    shipped = json.loads((ship / "sft-trial-grpo" / "adapter_config.json").read_text())
    assert (
        shipped["base_model_name_or_path"] == "../sft-trial"
    )  # loads from the shipped SFT adapter, wherever they move
    assert len(list((ship / "sft-trial-grpo" / "rollouts").glob("step-*.jsonl"))) == 1
    assert summary["success"]["sft-trial/unseen"]["n"] == config.n * config.seeds
    assert summary["success"]["sft-trial/evolved+unseen"]["n"] == 2 * config.n * config.seeds
    assert summary["command"] == config.command() and set(summary["gaps"]["sft-trial minus sft-golden"]) == set(
        [*HARD, POOLED]
    )


def test_demo_data_at_the_cpu_size_is_the_shipped_data_compared_only_where_that_is_at_hand(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the lab's folder: no data/ here
    config = DemoConfig(profile="cpu", out=str(tmp_path / "runs"))
    assert make_data(config, progress=False) == {}
    assert (tmp_path / "runs" / "data" / "trajectories" / "trial-train" / "data.parquet").is_file()
    # In the lab's folder the same call finds that data made, and compares it with the shipped data.
    monkeypatch.chdir(LAB)
    same = make_data(config, progress=False)
    assert same == {"tasks/train.jsonl": True, "trajectories/golden-train": True, "trajectories/trial-train": True}


def test_an_ordering_shows_ties_as_ties():
    assert (
        ordering({"base": 0.0, "sft-trial": 0.1, "sft-golden": 0.25, "sft-trial-grpo": 0.1})
        == "sft-golden > sft-trial = sft-trial-grpo > base"
    )


def test_without_a_full_ablation_the_demo_says_how_to_make_one():
    lines = relation_to_full({"pooled": {"base": {"success": 0.0, "n": 4}}, "budgets": {}}, None, None)
    assert "`make ablation` writes it" in "\n".join(lines)


def test_a_demo_folder_of_another_profile_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "runs"
    out.mkdir()
    (out / "demo.json").write_text(json.dumps({"config": {"profile": "tiny"}}))
    assert main(["demo", "--profile", "cpu", "--out", str(out), "--report", str(tmp_path / "report.md")]) == 2
    assert "holds a demo at the tiny profile" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["demo.json"]  # nothing built, nothing overwritten
