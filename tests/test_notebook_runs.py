"""The runs the notebooks train and the shipped ones that stand in for them: configs, folders and reports."""

from labkit import notebook_runs


def test_shipped_adapters_and_report_parts(tmp_path):
    assert notebook_runs.shipped_adapter("sft-trial", root=str(tmp_path)) is None
    (tmp_path / "sft-trial").mkdir()
    (tmp_path / "sft-trial" / "adapter_config.json").write_text("{}")
    assert notebook_runs.shipped_adapter("sft-trial", root=str(tmp_path)) == str(tmp_path / "sft-trial")
    assert notebook_runs.report_parts(tmp_path / "none.md") == ("", [])
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.png").write_bytes(b"png")
    (tmp_path / "r.md").write_text("# Title\n\n| a |\n\n![a](figures/a.png)\n![b](figures/missing.png)\n")
    text, images = notebook_runs.report_parts(tmp_path / "r.md")
    assert text.strip() == "| a |" and images == [tmp_path / "figures" / "a.png"]


def test_trained_policies_finds_yours_or_the_shipped_ones(tmp_path, monkeypatch):
    shipped = notebook_runs.trained_policies("cpu", notebook_runs.TRAINED_SOURCES[1])
    assert set(shipped) == {"sft-golden", "sft-recover", "sft-trial", "sft-trial-grpo"}  # shipped in data/adapters
    assert notebook_runs.trained_policies("tiny", notebook_runs.TRAINED_SOURCES[1]) == {}  # trained for another model
    monkeypatch.chdir(tmp_path)
    assert notebook_runs.trained_policies("tiny", notebook_runs.TRAINED_SOURCES[0]) == {}
    folder = tmp_path / "runs" / "notebook-sft" / "tiny" / "sft-trial"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    assert notebook_runs.trained_policies("tiny", notebook_runs.TRAINED_SOURCES[0]) == {
        "sft-trial": "runs/notebook-sft/tiny/sft-trial"
    }


def test_first_table_is_the_headline_of_the_shipped_report():
    text, _ = notebook_runs.report_parts("reports/ablation.md")
    table = notebook_runs.first_table(text).splitlines()
    assert table[0].startswith("| arm |") and any(line.startswith("| sft-trial-grpo |") for line in table)
    assert notebook_runs.first_table("no table here") == ""


def test_rl_init_is_the_shipped_sft_adapter_at_cpu_size_or_says_why_not(tmp_path):
    assert notebook_runs.rl_init("tiny")[0] == "tiny"
    init, note = notebook_runs.rl_init("cpu", "data/adapters")
    assert init == "data/adapters/sft-trial" and "SFT-trial" in note
    init, note = notebook_runs.rl_init("cpu", str(tmp_path))
    assert init == "smollm2-135m" and "not in" in note and "GRPO-only" in note


def test_notebook_run_config_and_the_shipped_run(tmp_path):
    tiny = notebook_runs.notebook_rl_config("tiny", "data", out_root=str(tmp_path))
    assert tiny.init == "tiny" and tiny.steps == 2 and tiny.tasks == "data/tasks/train.jsonl"
    assert tiny.out == f"{tmp_path}/tiny/{notebook_runs.SHIPPED_RL}"
    cpu = notebook_runs.notebook_rl_config("cpu", "data")
    assert cpu.init == "data/adapters/sft-trial" and cpu.steps == 4 and cpu.episodes_per_step <= 8
    folder, note = notebook_runs.shipped_rl_status("cpu", str(tmp_path))
    assert folder is None and "No shipped GRPO run" in note and "labkit rl" in note
    (tmp_path / notebook_runs.SHIPPED_RL).mkdir()
    (tmp_path / notebook_runs.SHIPPED_RL / "adapter_config.json").write_text("{}")
    folder, note = notebook_runs.shipped_rl_status("cpu", str(tmp_path))
    assert folder == str(tmp_path / notebook_runs.SHIPPED_RL) and "until your own run finishes" in note
    folder, note = notebook_runs.shipped_rl_status(
        "tiny", str(tmp_path)
    )  # results to read at any profile, labelled as the cpu run
    assert folder == str(tmp_path / notebook_runs.SHIPPED_RL) and "trained at the cpu profile" in note
