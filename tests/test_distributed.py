"""Beyond one machine: two processes under `accelerate launch` train one model; rollouts from a served model.

The launches use the shipped DDP config. `accelerate launch --cpu --num_processes 2`
would start a single process (accelerate runs several CPU processes only through
MPI), so the config's torchrun launcher starts both, and without CUDA labkit trains
them on the CPU over gloo. tests/distributed_probe.py records each process's
trainable weights when training starts and ends.

vLLM needs a GPU, so the served-model path runs against :class:`LocalServer`, which
answers the requests TRL's ``VLLMClient`` would send with the tiny model itself.
"""

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from localhost import free_port

from labkit.env import EnvConfig
from labkit.models import load_model, tiny_model
from labkit.rl import RLRunConfig, build_trainer, read_rollout_log
from labkit.rollout import GenerationConfig, ServedModel, rollout_batch
from labkit.sft import read_run_card
from labkit.tasks import Task, generate_tasks

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 2
THEN = "--then"  # tests/distributed_probe.py runs the commands it separates one after another


def launch(tmp_path: Path, *commands: list[str]) -> dict[str, list[dict]]:
    """Run each `labkit COMMAND` in turn in the same two processes (one start pays for them all);
    return each command's records by its stage, in rank order."""
    digests = tmp_path / "digests"
    shutil.rmtree(digests, ignore_errors=True)  # an earlier launch's records must not pass for this one's
    stages = [arg for command in commands for arg in (*command, "--profile", "tiny", "--report-to", "none", THEN)]
    launcher = [
        str(Path(sys.executable).parent / "accelerate"),
        "launch",
        "--config_file",
        str(ROOT / "configs/accelerate/ddp.yaml"),
        "--num_processes",
        str(PROCESSES),
        "--main_process_port",
        str(free_port()),
        str(ROOT / "tests/distributed_probe.py"),
        *stages[:-1],
    ]
    env = {**os.environ, "LABKIT_PROBE_DIGESTS": str(digests), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(launcher, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return {
        stage: [json.loads((digests / f"{stage}-rank-{rank}.json").read_text()) for rank in range(PROCESSES)]
        for stage in (command[0] for command in commands)
    }


def assert_one_model_trained(ranks: list[dict]) -> None:
    assert all(r["processes"] == PROCESSES and r["wrapper"] == "DistributedDataParallel" for r in ranks)
    assert len({r["before"] for r in ranks}) == 1, "the processes started from different weights"
    assert len({r["after"] for r in ranks}) == 1, "the processes ended with different weights"
    assert ranks[0]["after"] != ranks[0]["before"], "nothing was trained"


def test_sft_and_grpo_in_two_processes_train_one_model_on_shared_work_log_every_episode_and_resume(tmp_path):
    sft, out = tmp_path / "sft", tmp_path / "rl"
    records = launch(tmp_path, ["sft", "--out", str(sft)], ["rl", "--out", str(out)])

    assert_one_model_trained(records["sft"])
    card = read_run_card(sft)
    assert card["processes"] == PROCESSES
    batches = math.ceil(card["data"]["rows"] / card["config"]["batch_size"])
    assert card["steps"] == math.ceil(batches / PROCESSES), "each process should train on its own share of the batches"
    assert (sft / "adapter_model.safetensors").is_file() and (sft / "loss.png").is_file()

    straight = records["rl"]
    assert_one_model_trained(straight)
    card = read_run_card(out)
    per_process = card["config"]["prompts_per_step"] * card["config"]["num_generations"]
    assert card["processes"] == PROCESSES and card["episodes_per_step"] == PROCESSES * per_process
    rows = read_rollout_log(out)
    assert len(rows) == card["steps"] * card["episodes_per_step"], "the main process logs every process's episodes"
    first = [r for r in rows if r["step"] == 1]
    groups = card["episodes_per_step"] // card["config"]["num_generations"]
    assert [r["group"] for r in first] == [g for g in range(groups) for _ in range(card["config"]["num_generations"])]
    # Each group is one task, and each process played tasks of its own.
    assert all(len({r["task_id"] for r in first if r["group"] == g}) == 1 for g in range(groups))
    assert len({r["task_id"] for r in first}) == groups
    assert any(r["advantage"] != 0 for r in first)

    # Lose the last checkpoint and the card, as a run killed during its last step would (its step was logged):
    # the rerun resumes on both processes, replays that step once, and ends with the same weights.
    shutil.rmtree(out / "checkpoints" / f"checkpoint-{card['steps']}")
    (out / "run_card.json").unlink()
    resumed = launch(tmp_path, ["rl", "--out", str(out)])["rl"]
    assert [r["after"] for r in resumed] == [r["after"] for r in straight]
    card = read_run_card(out)
    assert card["resumed_from"].endswith(f"checkpoint-{card['steps'] - 1}")
    assert [r["messages"] for r in read_rollout_log(out)] == [r["messages"] for r in rows]


class LocalServer:
    """Stands in for TRL's ``VLLMClient``: each prompt generated alone, whole, the way a server sees it."""

    def __init__(self, model):
        self.model, self.prompts = model, 0

    def generate(self, prompts, temperature, top_p, max_tokens, logprobs, generation_kwargs):
        """Greedy, whatever ``temperature`` asks: the tests compare with greedy rollouts or check only shapes."""
        completions, scores = [], []
        for ids in prompts:
            stop = generation_kwargs["stop_token_ids"]
            with torch.no_grad():
                out = self.model.generate(
                    torch.tensor([ids]),
                    attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                    max_new_tokens=max_tokens,
                    do_sample=False,
                    eos_token_id=stop,
                    pad_token_id=stop[0],
                    return_dict_in_generate=True,
                    output_logits=True,
                )
            new = out.sequences[0, len(ids) :]
            chosen = torch.log_softmax(torch.stack(out.logits, dim=1)[0].float(), dim=-1).gather(-1, new[:, None])
            completions.append(new.tolist())
            scores.append(chosen.tolist())  # one [log-prob] per token, as vLLM answers with logprobs=0
        self.prompts += len(prompts)
        return {"completion_ids": completions, "logprobs": scores if logprobs is not None else None}


def test_rollouts_from_a_served_model_equal_the_models_own(tokenizer, catalog):
    # Weights scaled up tenfold, so that what the random model writes depends on what it reads (as in test_rollout.py).
    model = tiny_model(tokenizer, seed=0)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "norm" not in name:
                weight.mul_(10)
    tasks = generate_tasks("seen", 4, seed=0, catalog=catalog)
    gen, env_config = GenerationConfig(max_new_tokens=16, batch_size=4, logprobs=True), EnvConfig(max_turns=3)
    server = LocalServer(model)
    local = rollout_batch(model, tokenizer, tasks, catalog, env_config, gen, progress=False)
    served = rollout_batch(
        ServedModel(server, tokenizer.eos_token_id), tokenizer, tasks, catalog, env_config, gen, progress=False
    )
    for a, b in zip(local, served):
        assert a.token_ids == b.token_ids and a.owner == b.owner and a.problems == b.problems
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4)
    assert len({tuple(r.token_ids) for r in local}) > 1 and server.prompts >= len(tasks)


def test_grpo_with_a_vllm_server_plays_its_rollouts_there(tmp_path):
    loaded = load_model("tiny")
    trainer = build_trainer(RLRunConfig(profile="tiny", out=str(tmp_path), report_to="none"), loaded, progress=False)
    # What --vllm-server sets up, without vLLM: TRL's use_vllm, and a client for the rollout function.
    trainer.use_vllm = True
    server = LocalServer(trainer.model)
    trainer.rollout_func.served = ServedModel(server, loaded.tokenizer.eos_token_id)
    rows = [trainer.train_dataset[i] for i in range(2) for _ in range(trainer.num_generations)]
    trainer.batch_tasks = [Task.from_row(json.loads(r["task"])) for r in rows]
    output = trainer.rollout_func([r["prompt"] for r in rows], trainer)
    assert server.prompts >= len(rows) and len(output["completion_ids"]) == len(rows)
    assert all(
        len(lp) == len(c) == len(m)
        for lp, c, m in zip(output["logprobs"], output["completion_ids"], output["env_mask"])
    )


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_a_vllm_server_without_vllm_installed_is_a_clear_error(tmp_path):
    config = RLRunConfig(profile="tiny", out=str(tmp_path), report_to="none", vllm_server="127.0.0.1:8000")
    assert config.vllm_server_url() == "http://127.0.0.1:8000"
    with pytest.raises(ValueError, match="needs vLLM"):
        build_trainer(config, load_model("tiny"), progress=False)
