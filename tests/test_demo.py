"""`labkit demo`: the whole course headless (data, SFT, GRPO, evaluation, report), and that it resumes."""

import json
from pathlib import Path

from labkit.ablation import HARD, POOLED, arm_rows
from labkit.cli import main
from labkit.demo import FULL, DemoConfig, make_data, ordering, relation_to_full

LAB = Path(__file__).resolve().parent.parent


def test_demo_runs_the_course_headless_and_resumes(tmp_path, capsys):
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
    rows = arm_rows(DemoConfig(profile="tiny", out=str(out), report=str(report)).ablation(), "sft-golden", HARD)
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
