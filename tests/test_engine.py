"""The vLLM rollout engine against the in-process one: same episodes, on-policy log-probs, no orphan servers.

The tests that need vLLM run where `make vllm` installed it (CI does) and fail under CI without it.
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import torch

from labkit import engine as engines
from labkit.engine import EngineNotAvailableError, VLLMConfig, rollout_model, shared_engine
from labkit.env import EnvConfig
from labkit.models import load_model
from labkit.protocol import END_OF_TURN
from labkit.rl import RLRunConfig, build_trainer, read_rollout_log, train_rl
from labkit.rollout import GenerationConfig, ServedModel, rollout_batch
from labkit.sft import SFTRunConfig, read_run_card, train_sft
from labkit.tasks import Task, generate_tasks
from labkit.trl_compat import per_token_logps

SERVER_ENTRY = "vllm.entrypoints.launchers.api_server.entry"


def require_vllm():
    missing = engines.vllm_missing_reason()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test the vLLM engine: {missing}")
        pytest.skip(missing)


def server_processes() -> set[int]:
    """Every vLLM server process on the machine, with the engine processes it started."""
    pids = set()
    for process in psutil.process_iter(["cmdline"]):
        if any(SERVER_ENTRY in part for part in process.info["cmdline"] or []):
            pids.add(process.pid)
            pids.update(child.pid for child in process.children(recursive=True))
    return pids


def lingering(servers) -> set[int]:
    """What ``servers()`` still finds after up to a minute: a server takes a moment to stop."""
    deadline = time.monotonic() + 60
    while (alive := servers()) and time.monotonic() < deadline:
        time.sleep(1)
    return alive


@pytest.fixture(scope="module")
def tiny_on_engine():
    """The tiny model in-process and on the engine, both in fp32 (the tiny profile's serving config)."""
    require_vllm()
    loaded = load_model("tiny")
    served = shared_engine(loaded, VLLMConfig.for_profile("tiny"))
    yield loaded, ServedModel(served, loaded.tokenizer.convert_tokens_to_ids(END_OF_TURN))
    # What a finished run does at exit (atexit), should a test have left the engine running.
    engines._stop_all()


def our_servers() -> set[int]:
    return server_processes() & {child.pid for child in psutil.Process().children(recursive=True)}


def test_a_missing_or_broken_engine_says_what_to_do_and_auto_falls_back(monkeypatch, tmp_path, capsys):
    from labkit.cli import main

    monkeypatch.setattr(engines, "VLLM_VENV", "no-such-venv")
    monkeypatch.delenv(engines.VLLM_PYTHON_ENV, raising=False)
    if engines.find_vllm_python() is None:  # this interpreter has no vLLM either
        with pytest.raises(EngineNotAvailableError, match="make vllm"):
            engines.check_engine("vllm")
    with pytest.raises(ValueError, match="choose one of auto, transformers, vllm"):
        engines.check_engine("fast")

    # A broken engine (here: an interpreter without vLLM) dies at once, and the error shows its log.
    broken = sys.executable if importlib.util.find_spec("vllm") is None else "/bin/false"
    monkeypatch.setenv(engines.VLLM_PYTHON_ENV, broken)
    monkeypatch.setattr(engines, "_FAILED_START", None)
    code = main(
        [
            "eval",
            "--policy",
            "tiny",
            "--profile",
            "tiny",
            "--engine",
            "vllm",
            "--n",
            "1",
            "--seeds",
            "1",
            "--out",
            str(tmp_path / "e"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "the vLLM server exited with code" in err and "Last lines of" in err

    loaded = load_model("tiny")
    assert rollout_model(loaded, "auto", profile="cpu") is loaded.model
    assert "using the in-process engine" in capsys.readouterr().err
    assert engines.resolve_engine("auto", profile="cpu") == "transformers"  # and auto does not try again


def test_both_engines_play_the_same_greedy_episodes(tiny_on_engine, catalog):
    loaded, served = tiny_on_engine
    tasks = generate_tasks("seen", 8, seed=0, catalog=catalog)
    env, gen = EnvConfig(max_turns=3), GenerationConfig(max_new_tokens=24, batch_size=8, max_length=400)
    local = rollout_batch(loaded.model, loaded.tokenizer, tasks, catalog, env, gen, progress=False)
    remote = rollout_batch(served, loaded.tokenizer, tasks, catalog, env, gen, progress=False)
    turns = same = 0
    for a, b in zip(local, remote):
        assert (a.prompt_length, a.trajectory.end_reason, len(a.trajectory.steps)) == (
            b.prompt_length,
            b.trajectory.end_reason,
            len(b.trajectory.steps),
        )
        assert a.problems == b.problems and a.generated_tokens == b.generated_tokens
        assert len(a.token_ids) == len(b.token_ids) and a.owner == b.owner
        for x, y in zip(_turns(a), _turns(b)):
            turns, same = turns + 1, same + (x == y)
    # Greedy decoding of the random tiny model meets near-ties, where two fp32 kernels may round apart.
    assert same >= 0.9 * turns, f"{same} of {turns} turns identical"


def _turns(rollout) -> list[list[int]]:
    spans, current = [], []
    for token, mine in zip(rollout.token_ids, rollout.owner):
        if mine:
            current.append(token)
        elif current:
            spans, current = spans + [current], []
    return spans + ([current] if current else [])


def test_grpo_pushes_the_policy_and_the_engines_logprobs_match_the_trainers(tiny_on_engine, tmp_path, monkeypatch):
    monkeypatch.setattr("labkit.sft.bf16_ok", lambda: False)  # the trainer in fp32, like the tiny engine
    loaded, _ = tiny_on_engine
    config = RLRunConfig(profile="tiny", out=str(tmp_path), num_generations=2, report_to="none", engine="vllm")
    trainer = build_trainer(config, load_model("tiny"), progress=False)
    with torch.no_grad():  # move the policy away from the base model: the push must carry the adapter
        generator = torch.Generator().manual_seed(0)
        for name, weight in trainer.model.named_parameters():
            if "lora_B" in name:
                weight.add_(torch.randn(weight.shape, generator=generator) * 0.5)
    rows = [trainer.train_dataset[i] for i in range(2) for _ in range(config.num_generations)]
    trainer.batch_tasks = [Task.from_row(json.loads(r["task"])) for r in rows]
    output = trainer.rollout_func([r["prompt"] for r in rows], trainer)
    checked, gaps, base_gaps = 0, [], []
    for prompt, completion, mask, sampled in zip(
        output["prompt_ids"], output["completion_ids"], output["env_mask"], output["logprobs"]
    ):
        ids = torch.tensor([prompt + completion])
        with torch.no_grad():
            policy = per_token_logps(trainer, trainer.model, ids, torch.ones_like(ids), len(completion))
            base = torch.log_softmax(loaded.model(ids).logits[0, len(prompt) - 1 : -1] / config.temperature, dim=-1)
        mine = torch.tensor(mask, dtype=torch.bool)
        engine_logprobs = torch.tensor(sampled)[mine]
        gaps.append((policy[0][mine] - engine_logprobs).abs())
        base_gaps.append((base.gather(-1, torch.tensor(completion)[:, None])[:, 0][mine] - engine_logprobs).abs())
        checked += int(mine.sum())
    gap, base_gap = torch.cat(gaps), torch.cat(base_gaps)
    assert checked > 50
    assert gap.max() < 2e-3, gap.max()  # fp32 on both sides
    assert base_gap.mean() > 50 * gap.mean()  # the engine played the pushed policy, not the base model


KILLED_RUN = """
import json, os, signal, sys
from labkit.rl import RLRunConfig, train_rl

def kill_after_checkpoint(logs):
    if logs.get("step", 0) >= 2 and "reward" in logs:  # checkpoint-1 is on disk by now
        os.kill(os.getpid(), signal.SIGKILL)

train_rl(RLRunConfig(**json.loads(sys.argv[1])), progress=False, on_log=kill_after_checkpoint)
"""


def test_grpo_on_the_engine_resumes_after_a_kill_without_repeating_a_step_and_leaves_no_server(
    tiny_on_engine, tmp_path
):
    run = tmp_path / "run"
    config = dict(profile="tiny", out=str(run), steps=3, save_steps=1, report_to="none", engine="vllm")
    before = server_processes()  # the module's engine, and any other on the machine
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, json.dumps(config)], capture_output=True, text=True, timeout=900
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not lingering(lambda: server_processes() - before), "a vLLM server outlived the killed run"
    assert read_run_card(run) is None and (run / "checkpoints" / "checkpoint-1").is_dir()
    assert len(list((run / "rollouts").glob("step-*.jsonl"))) == 2  # step 2 was logged, then lost

    # The rerun plays here, on the module's engine: a second server start would cost a minute and check nothing
    # the kill above and the fixture's stop at exit do not. (In-process, the replayed steps play the very same
    # episodes: test_rl.py checks that; the engine's sampling is not seeded.)
    card = train_rl(RLRunConfig(**config), progress=False)
    assert not lingering(lambda: server_processes() - before), "the rerun started a server of its own"
    # Step 2 replayed, step 3 played on: each logged once.
    assert card["resumed_from"].endswith("checkpoint-1") and card["steps"] == 3 and read_run_card(run) == card
    steps = [r["step"] for r in read_rollout_log(run)]
    assert sorted(set(steps)) == [1, 2, 3] and len(steps) == 3 * card["episodes_per_step"]


def test_training_an_adapter_stops_the_idle_engine_and_every_process_it_started(tiny_on_engine, tmp_path):
    # Last in this file: it stops the module's engine. An idle server would take CPU from the trainer.
    ours = our_servers()
    assert ours, "the module's engine runs a server of ours"
    data = "data/trajectories/golden-train"
    train_sft(
        SFTRunConfig(data=data, profile="tiny", out=str(tmp_path), token_budget=1000, report_to="none"), progress=False
    )
    assert engines._SHARED is None
    assert not lingering(lambda: server_processes() & ours), "a vLLM server outlived the engine's stop"
