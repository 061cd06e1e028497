"""GRPO with the lab's rollout engine behind TRL's rollout_func: masks, log-probs, logs, runs that resume."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from labkit.models import load_model
from labkit.rewards import COMPONENTS, GUARDS
from labkit.rl import RLRunConfig, build_trainer, episode_tokens, read_rollout_log, train_rl
from labkit.sft import read_run_card, ship_adapter
from labkit.tasks import Task
from labkit.trl_compat import per_token_logps

ADAPTER = "data/adapters/sft-trial"


def rollout_batch_of(trainer, n_tasks: int = 2) -> tuple[list[Task], dict]:
    """One step's episodes, straight from the trainer's rollout_func (what GRPOTrainer gets)."""
    rows = [trainer.train_dataset[i] for i in range(n_tasks) for _ in range(trainer.num_generations)]
    trainer.batch_tasks = [Task.from_row(json.loads(r["task"])) for r in rows]
    return trainer.batch_tasks, trainer.rollout_func([r["prompt"] for r in rows], trainer)


def trainer_logprobs(trainer, prompt_ids: list[int], completion_ids: list[int]) -> torch.Tensor:
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logps = per_token_logps(trainer, trainer.model, ids, torch.ones_like(ids), len(completion_ids))
    return logps[0]


def assert_step0_logprobs_match(trainer, output: dict, atol: float) -> int:
    checked = 0
    for prompt, completion, mask, sampled in zip(
        output["prompt_ids"], output["completion_ids"], output["env_mask"], output["logprobs"]
    ):
        recomputed = trainer_logprobs(trainer, prompt, completion)
        model_tokens = torch.tensor(mask, dtype=torch.bool)
        assert torch.allclose(recomputed[model_tokens], torch.tensor(sampled)[model_tokens], atol=atol), (
            (recomputed[model_tokens] - torch.tensor(sampled)[model_tokens]).abs().max()
        )
        checked += int(model_tokens.sum())
    return checked


@pytest.fixture
def fp32(monkeypatch):
    """Train in fp32, so log-probs can be compared to 1e-4 (bf16 autocast rounds them to ~1e-2)."""
    monkeypatch.setattr("labkit.sft.bf16_ok", lambda: False)  # run_arguments reads it


def test_completions_hand_trl_only_the_model_tokens_as_trainable_at_their_sampled_logprobs(tmp_path, fp32):
    config = RLRunConfig(profile="tiny", out=str(tmp_path), report_to="none")
    loaded = load_model("tiny")
    trainer = build_trainer(config, loaded, progress=False)
    tasks, output = rollout_batch_of(trainer)
    rollouts = trainer.rollout_func.last_rollouts
    for rollout, completion, mask in zip(rollouts, output["completion_ids"], output["env_mask"]):
        n = rollout.prompt_length
        assert output["prompt_ids"][rollouts.index(rollout)] == rollout.token_ids[:n]
        assert completion == rollout.token_ids[n : n + len(completion)]
        assert mask == rollout.owner[n : n + len(completion)]
        assert sum(mask) == rollout.generated_tokens  # every sampled token is kept, and only those carry loss
        tokens = episode_tokens(rollout, loaded.tokenizer.convert_tokens_to_ids("<|im_end|>"))
        assert tokens.env_mask[0] == 1  # the completion opens with the model's first turn
    assert set(output["reward_components"][0]) == set(COMPONENTS)
    # At step 0 the trainer, under the training template, scores the model's tokens as the rollout sampled them.
    assert assert_step0_logprobs_match(trainer, output, atol=1e-4) > 50


@pytest.mark.slow
def test_real_tool_results_carry_no_loss_and_logprobs_match(tmp_path, fp32):
    """The shipped SFT-trial adapter on the embedded model makes real tool calls: their results must be masked."""
    # In-process: the comparison is at fp32, and a vLLM engine (where installed) would sample in bf16.
    # Two tasks of up to three turns are enough: their episodes get 8 tool results back, 3 of them successes
    # (four tasks of four turns got 22 and 4, in twice the time).
    config = RLRunConfig(
        profile="cpu",
        init=ADAPTER,
        out=str(tmp_path),
        num_generations=2,
        max_turns=3,
        report_to="none",
        engine="transformers",
    )
    loaded = load_model(ADAPTER)
    trainer = build_trainer(config, loaded, progress=False)
    tasks, output = rollout_batch_of(trainer, n_tasks=2)
    results = 0
    for rollout, completion, mask in zip(
        trainer.rollout_func.last_rollouts, output["completion_ids"], output["env_mask"]
    ):
        trainable = loaded.tokenizer.decode([t for t, m in zip(completion, mask) if m])
        masked = loaded.tokenizer.decode([t for t, m in zip(completion, mask) if not m])
        for step in rollout.trajectory.steps[
            :-1
        ]:  # the last reply comes after the model's last token: trimmed, see episode_tokens
            if step.observation is not None and len(step.observation.content) > 20:
                assert step.observation.content in masked
                assert step.observation.content not in trainable
                results += step.observation.ok
    assert results >= 1, "no tool call succeeded: the masking check saw no real tool result"
    assert assert_step0_logprobs_match(trainer, output, atol=2e-3) > 100


def test_tiny_run_logs_rewards_guards_and_groups_becomes_a_policy_and_replays_a_lost_step(tmp_path):
    out = tmp_path / "run"
    logs = []
    card = train_rl(RLRunConfig(profile="tiny", out=str(out), report_to="none"), progress=False, on_log=logs.append)
    assert card["steps"] == 2 and read_run_card(out) == card
    for key in [
        "reward",
        "kl",
        "frac_reward_zero_std",
        *(f"rewards/{c}/mean" for c in COMPONENTS),
        *(f"guards/{g}" for g in GUARDS),
        "episode/tool_call_rate",
        "episode/trials",
        "time/rollout_s",
        "time/environment_s",
    ]:
        assert key in logs[0], key
    rows = read_rollout_log(out)
    assert len(rows) == card["steps"] * card["episodes_per_step"]
    first = rows[0]
    assert {"step", "group", "reward", "rewards", "advantage", "loss_spans", "guards", "messages", "phases"} <= set(
        first
    )
    assert [r["group"] for r in rows[:4]] == [0, 0, 1, 1]  # tiny: 2 tasks x 2 episodes
    assert any(carried for _, carried in first["loss_spans"]) and any(not carried for _, carried in first["loss_spans"])
    assert (out / "curves.png").is_file() and "GRPO run" in (out / "README.md").read_text()
    assert load_model(str(out)).model is not None
    assert train_rl(RLRunConfig(profile="tiny", out=str(out)), progress=False) == card  # finished: read back
    stale = tmp_path / "shipped" / "rollouts" / "step-00099.jsonl"  # the last step of a run shipped there before
    stale.parent.mkdir(parents=True)
    stale.write_text("{}\n")
    shipped = ship_adapter(out, tmp_path / "shipped")
    assert [p.name for p in (shipped / "rollouts").iterdir()] == [f"step-{card['steps']:05d}.jsonl"]

    # Lose the last checkpoint and the card, as a run killed in its last step would (that step was logged): the rerun
    # resumes, logs the step once, and replays the same episodes from the same weights. (A real SIGKILL, on the vLLM
    # engine: test_engine.py; under two processes: test_distributed.py.)
    shutil.rmtree(out / "checkpoints" / f"checkpoint-{card['steps']}")
    (out / "run_card.json").unlink()
    resumed = train_rl(RLRunConfig(profile="tiny", out=str(out), report_to="none"), progress=False)
    assert resumed["resumed_from"].endswith(f"checkpoint-{card['steps'] - 1}") and resumed["steps"] == card["steps"]
    assert [(r["step"], r["messages"]) for r in read_rollout_log(out)] == [(r["step"], r["messages"]) for r in rows]


def test_rl_on_top_of_an_sft_adapter_loads_as_sft_plus_rl(tmp_path):
    from labkit.sft import SFTRunConfig, train_sft

    sft = tmp_path / "sft"
    train_sft(
        SFTRunConfig(
            data="data/trajectories/golden-train",
            profile="tiny",
            out=str(sft),
            token_budget=2000,
            learning_rate=0.05,
            report_to="none",
        ),
        progress=False,
    )
    rl = tmp_path / "rl"
    train_rl(
        RLRunConfig(profile="tiny", init=str(sft), out=str(rl), steps=1, learning_rate=0.05, report_to="none"),
        progress=False,
    )  # one step stacks as well as two
    assert json.loads((rl / "adapter_config.json").read_text())["base_model_name_or_path"] == "../sft"
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        base, after_sft, after_rl = (load_model(p).model(input_ids=ids).logits for p in ("tiny", str(sft), str(rl)))
    # Loading the GRPO run rebuilds the SFT weights under it (tiny's rewards never vary, so GRPO itself moves nothing).
    assert not torch.allclose(base, after_sft) and torch.allclose(after_rl, after_sft, atol=1e-5)


def test_rl_cli_trains_tiny_and_refuses_bad_reward_settings_and_foreign_models(tmp_path):
    from labkit.cli import main

    assert (
        main(
            [
                "rl",
                "--profile",
                "tiny",
                "--steps",
                "1",
                "--reward",
                "format=0",
                "--report-to",
                "none",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    card = read_run_card(tmp_path / "run")
    assert card["config"]["rewards"]["format"] == 0 and "rewards/format/mean" not in card["history"][0]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "labkit.cli",
            "rl",
            "--profile",
            "tiny",
            "--reward",
            "outcom=1",
            "--out",
            str(tmp_path / "bad"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        done.returncode != 0 and "unknown reward settings ['outcom']" in done.stderr and "Traceback" not in done.stderr
    )
    assert not Path(tmp_path / "bad").exists()
    foreign = tmp_path / "someone-elses-adapter"
    foreign.mkdir()
    (foreign / "adapter_config.json").write_text("{}")
    assert main(["rl", "--profile", "tiny", "--out", str(foreign)]) == 2, "never trains over a model it did not make"
    assert sorted(p.name for p in foreign.iterdir()) == ["adapter_config.json"]
