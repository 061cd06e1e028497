"""SFT with TRL: which tokens carry labels, what data is used, a run card, and resuming after a kill."""

import json
import os
import signal
import subprocess
import sys

import pytest

from labkit.data import DatasetFileError, load_dataset_dir, token_lengths, write_dataset
from labkit.models import load_model
from labkit.runs import RunFolderError
from labkit.sft import (
    SFTDataError,
    SFTRunConfig,
    build_trainer,
    last_checkpoint,
    read_run_card,
    train_sft,
    training_data,
)

TRIAL = "data/trajectories/trial-train"
GOLDEN = "data/trajectories/golden-train"


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny")


def labelled_text(trainer, row: int) -> tuple[str, str]:
    """The text of the tokens that carry labels, and of those that do not, in one collated training row."""
    example = trainer.train_dataset[row]
    batch = trainer.data_collator([example])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    tokenizer = trainer.processing_class
    learned = tokenizer.decode([i for i, label in zip(ids, labels) if label != -100])
    context = tokenizer.decode([i for i, label in zip(ids, labels) if label == -100])
    return learned, context


def test_only_assistant_tokens_carry_labels(tiny, tmp_path):
    config = SFTRunConfig(data=TRIAL, profile="tiny", out=str(tmp_path), token_budget=3000, report_to="none")
    data = training_data(config, tiny.tokenizer)
    trainer = build_trainer(config, tiny, data.dataset, progress=False)
    # A row with a teacher's deliberate slip: the learner reads it, but is never trained to write it.
    row = next(i for i, r in enumerate(data.dataset) if any(m.get("train") is False for m in r["messages"]))
    messages = data.dataset[row]["messages"]
    learned, context = labelled_text(trainer, row)
    # Everything the assistant wrote but its slips, in order, and
    # nothing else: its reasons, calls, answer and end-of-turn tokens.
    turns = [m for m in messages if m["role"] == "assistant" and m.get("train") is not False]
    slips = [m for m in messages if m.get("train") is False]
    assert slips and all(slip["content"].strip() in context for slip in slips)
    expected = ""
    for turn in turns:
        expected += turn["content"].lstrip()
        for call in turn["tool_calls"] or []:
            expected += (
                '<tool_call>\n{"name": "'
                + call["function"]["name"]
                + '", "arguments": '
                + call["function"]["arguments"]
                + "}\n</tool_call>"
            )
        expected += "<|im_end|>"
    assert learned == expected
    for message in messages:
        if message["role"] in ("system", "user", "tool"):
            assert message["content"] in context and message["content"] not in learned
    assert learned.count("<|im_end|>") == len(turns), "the model must learn to stop each turn"


def test_training_data_fits_the_budget_and_max_length(tiny):
    config = SFTRunConfig(data=TRIAL, profile="tiny", token_budget=5000, max_length=700, report_to="none")
    data = training_data(config, tiny.tokenizer)
    lengths = token_lengths(data.dataset, tiny.tokenizer)
    assert sum(lengths) == data.tokens <= 5000 and max(lengths) <= 700
    assert data.kept == len(data.dataset) and data.kept + data.too_long + data.unused == 400
    assert data.dataset.column_names == ["messages", "tools"]
    again = training_data(config, tiny.tokenizer)
    assert again.dataset["messages"] == data.dataset["messages"], "same seed, same rows"
    other = training_data(
        SFTRunConfig(data=TRIAL, profile="tiny", token_budget=5000, max_length=700, seed=1), tiny.tokenizer
    )
    assert other.dataset["messages"] != data.dataset["messages"]


def test_matched_budgets_give_both_datasets_the_same_tokens(tiny):
    golden = training_data(SFTRunConfig(data=GOLDEN, profile="tiny", token_budget=20_000), tiny.tokenizer)
    trial = training_data(SFTRunConfig(data=TRIAL, profile="tiny", token_budget=20_000), tiny.tokenizer)
    assert abs(golden.tokens - trial.tokens) < 512 and golden.kept > trial.kept  # golden rows are shorter


def test_unusable_data_is_a_typed_error_that_says_what_to_do(tiny, tmp_path):
    with pytest.raises(DatasetFileError, match=f"labkit teach --out {tmp_path / 'nowhere'}"):
        training_data(SFTRunConfig(data=str(tmp_path / "nowhere"), profile="tiny"), tiny.tokenizer)
    write_dataset([{"text": "hello"}], tmp_path / "plain", "card")
    with pytest.raises(SFTDataError, match="no messages, tools column"):
        training_data(SFTRunConfig(data=str(tmp_path / "plain"), profile="tiny"), tiny.tokenizer)
    write_dataset([], tmp_path / "empty", "card")
    with pytest.raises(SFTDataError, match="holds no trajectories"):
        training_data(SFTRunConfig(data=str(tmp_path / "empty"), profile="tiny"), tiny.tokenizer)
    with pytest.raises(SFTDataError, match="raise --max-length"):
        training_data(SFTRunConfig(data=GOLDEN, profile="tiny", max_length=50), tiny.tokenizer)
    with pytest.raises(ValueError, match="token_budget must be positive"):
        SFTRunConfig(profile="tiny", token_budget=0)


def test_tiny_run_writes_a_card_and_becomes_a_policy(tmp_path, capfd):
    from labkit.policies import ModelPolicy, load_policy

    out = tmp_path / "run"
    logs = []
    card = train_sft(
        SFTRunConfig(data=GOLDEN, profile="tiny", out=str(out), token_budget=3000, report_to="none"),
        progress=False,
        on_log=logs.append,
    )
    printed = capfd.readouterr()
    assert "{'loss'" not in printed.out and "Tokenizing" not in printed.err, (
        "quiet runs (notebooks) print no raw logs nor dataset bars"
    )
    assert card["steps"] >= 3 and card["final_loss"] > 0 and card["data"]["tokens"] <= 3000
    assert [entry["step"] for entry in logs if "loss" in entry] == list(range(1, card["steps"] + 1)), (
        "one log per step, for live plots"
    )
    assert json.loads((out / "run_card.json").read_text()) == card
    for name in ("adapter_model.safetensors", "adapter_config.json", "README.md", "loss.png"):
        assert (out / name).is_file(), name
    assert "labkit sft --data data/trajectories/golden-train" in (out / "README.md").read_text()
    assert isinstance(load_policy(str(out), profile="tiny"), ModelPolicy)
    # A finished run is read back, not trained again.
    assert train_sft(SFTRunConfig(data=GOLDEN, profile="tiny", out=str(out), token_budget=3000), progress=False) == card
    # Killed between saving the adapter and writing the card: the rerun finishes from the last checkpoint.
    (out / "run_card.json").unlink()
    again = train_sft(
        SFTRunConfig(data=GOLDEN, profile="tiny", out=str(out), token_budget=3000, report_to="none"), progress=False
    )
    assert again["steps"] == card["steps"] and again["resumed_from"]
    with pytest.raises(
        RunFolderError,
        match=(
            r"holds another run \(data: .*To resume that run, rerun its "
            r"command: labkit sft --data data/trajectories/golden-train"
        ),
    ):
        train_sft(SFTRunConfig(data=TRIAL, profile="tiny", out=str(out), token_budget=3000), progress=False)
    foreign = tmp_path / "someone-elses-model"
    foreign.mkdir()
    (foreign / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="no `labkit sft` run made"):
        train_sft(SFTRunConfig(data=GOLDEN, profile="tiny", out=str(foreign), token_budget=3000), progress=False)


KILLED_RUN = """
import json, os, signal, sys
from labkit.sft import SFTRunConfig, train_sft

def kill_after_checkpoint(logs):
    if logs.get("step", 0) >= 5 and "loss" in logs:  # checkpoint-4 is on disk by now
        os.kill(os.getpid(), signal.SIGKILL)

train_sft(SFTRunConfig(**json.loads(sys.argv[1])), progress=False, on_log=kill_after_checkpoint)
"""


def test_a_killed_run_resumes_to_the_same_loss(tmp_path):
    # 5000 tokens make about 7 steps: killed at step 5, checkpoints
    # 2 and 4 are on disk, and the rerun must take the newer.
    config = dict(
        data=GOLDEN, profile="tiny", out=str(tmp_path / "killed"), token_budget=5000, save_steps=2, report_to="none"
    )
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, json.dumps(config)], capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert read_run_card(tmp_path / "killed") is None
    assert sorted(p.name for p in (tmp_path / "killed" / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
    ]

    # Only the kill needs a process of its own; the rerun and the straight run train here, sparing two process starts.
    resumed = train_sft(SFTRunConfig(**config), progress=False)
    straight = train_sft(SFTRunConfig(**{**config, "out": str(tmp_path / "straight")}), progress=False)
    assert resumed == read_run_card(tmp_path / "killed")
    assert resumed["resumed_from"].endswith("checkpoint-4") and straight["resumed_from"] is None
    assert resumed["steps"] == straight["steps"]
    assert resumed["final_loss"] == pytest.approx(straight["final_loss"], abs=1e-4)
    assert dict(resumed["loss_curve"])[resumed["steps"]] == pytest.approx(
        dict(straight["loss_curve"])[straight["steps"]], abs=1e-4
    )


def test_a_checkpoint_cut_short_by_a_kill_is_passed_over(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    for step, state in ((2, '{"global_step": 2}'), (4, '{"global_step": 4}'), (6, None), (8, '{"global_st')):
        (checkpoints / f"checkpoint-{step}").mkdir(parents=True)
        (checkpoints / f"checkpoint-{step}" / "README.md").write_text("")
        if state is not None:
            (checkpoints / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    assert last_checkpoint(tmp_path) == str(checkpoints / "checkpoint-4")
    assert last_checkpoint(tmp_path / "never-trained") is None


def test_sft_cli_reports_bad_data_without_a_traceback(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "labkit.cli",
            "sft",
            "--profile",
            "tiny",
            "--data",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 2 and "labkit teach" in done.stderr and "Traceback" not in done.stderr


def test_sft_cli_trains_the_tiny_profile_and_its_run_ships_as_a_bf16_adapter_that_loads_like_it(tmp_path):
    import torch

    from labkit.cli import main
    from labkit.sft import ship_adapter

    run = tmp_path / "run"
    # A high learning rate, so the adapter moves the model well clear of the bf16 rounding checked below.
    assert (
        main(
            [
                "sft",
                "--profile",
                "tiny",
                "--data",
                GOLDEN,
                "--token-budget",
                "2000",
                "--learning-rate",
                "0.05",
                "--report-to",
                "none",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    assert (read_run_card(run)["config"]["token_budget"], read_run_card(run)["config"]["learning_rate"]) == (2000, 0.05)
    assert load_dataset_dir(GOLDEN).num_rows == 400

    shipped = ship_adapter(run, tmp_path / "shipped")
    assert (shipped / "adapter_model.safetensors").stat().st_size < 0.6 * (
        run / "adapter_model.safetensors"
    ).stat().st_size
    assert read_run_card(shipped) == read_run_card(run)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        original, copied, base = (load_model(str(p)).model(input_ids=ids).logits for p in (run, shipped, "tiny"))
    assert torch.allclose(original, copied, atol=2e-2) and not torch.allclose(original, base, atol=1e-3)
    with pytest.raises(FileNotFoundError, match="not a finished LoRA run"):
        ship_adapter(tmp_path / "nothing", tmp_path / "x")


def test_shipped_adapters_changed_how_the_embedded_model_acts(catalog):
    """The shipped SFT adapters (data/adapters) make the embedded
    model write the lab's turns; the base model does not."""
    from labkit.env import EnvConfig, ToolCall
    from labkit.rollout import GenerationConfig, rollout_batch
    from labkit.tasks import generate_tasks

    tasks = generate_tasks("seen", 4, seed=0, catalog=catalog)
    gen = GenerationConfig(max_new_tokens=96)  # the cpu profile's turn

    def first_actions(policy):
        loaded = load_model(policy)
        rollouts = rollout_batch(
            loaded.model, loaded.tokenizer, tasks, catalog, EnvConfig(max_turns=1), gen, progress=False
        )
        return [r.trajectory.steps[0].action for r in rollouts]

    trial, golden, base = (
        first_actions(p) for p in ("data/adapters/sft-trial", "data/adapters/sft-golden", "smollm2-135m")
    )
    assert not any(isinstance(a, ToolCall) for a in base)
    trial_calls, golden_calls = ([a for a in actions if isinstance(a, ToolCall)] for actions in (trial, golden))
    assert len(trial_calls) >= 3 and len(golden_calls) >= 2
    assert any(a.phase == "trial" for a in trial_calls), "trained on trial trajectories, it opens by trying a tool"
    assert all(a.phase == "execution" for a in golden_calls), "golden trajectories never try"
