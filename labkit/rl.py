"""GRPO in the live tool environment: TRL's GRPOTrainer, with the lab's rollout engine as its ``rollout_func``.

    labkit rl --init data/adapters/sft-trial --profile cpu --out runs/rl-sft-trial

Each step draws ``prompts_per_step`` training tasks (seen families, evolution
levels 0-4, so the tools often differ from their docs) and plays each one
``num_generations`` times as a whole live episode: trials, execution, errors,
answer. The episodes are scored by :mod:`labkit.rewards`, and TRL turns each
group's rewards into advantages and the policy-gradient loss.

Why ``rollout_func`` with the lab's engine rather than TRL's own tool loop
(``tools=`` / ``environment_factory=``): TRL renders tool docs from the methods
it calls, so it cannot show the agent *stale* docs of a changed tool, which is
the whole point of the evolved tasks; it has no turn, call or token budgets and
no typed error observations; and it re-reads the whole transcript on every
turn. The engine (:mod:`labkit.rollout`) is the one evaluation uses, so RL and
evaluation play by the same rules, and it hands TRL the episode as token ids with
an ownership mask: tokens the model sampled carry loss, the environment's (tool
results, feedback, template glue) go to TRL as ``env_mask`` = 0 and carry none.

The run folder becomes a policy (``labkit eval --policy RUN``): a LoRA adapter
trained on top of the ``--init`` policy, which it names as its base.

    RUN/adapter_model.safetensors, adapter_config.json, tokenizer files
    RUN/checkpoints/checkpoint-N/   every save_steps; rerunning the command resumes from the newest
    RUN/rollouts/step-00001.jsonl   every episode of every step, with its rewards and advantage
    RUN/run_card.json, README.md    config, times, curves; written last
    RUN/curves.png

The same code runs under ``accelerate launch`` (``configs/accelerate/``): every
process plays its own tasks' episodes, each step's episodes are gathered into
one rollout log, and only the main process writes files. With ``vllm_server``
a vLLM server generates the episodes' turns instead of the trainer's model;
TRL pushes the trained weights to it before every step. In one process without
it, ``engine`` (:mod:`labkit.engine`) picks who plays the turns: the trainer's
model, or a local vLLM engine that is sent the policy's merged weights before
every step's rollouts, so they stay on-policy.

Longer than the lab's ~450 lines per module: the config, the rollout function TRL calls, the rollout log and
the resumable run are one stage; TRL's private names are kept apart in trl_compat.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

from labkit.data import read_rows, trajectory_row
from labkit.engine import ENGINE_OPTION, check_engine
from labkit.env import EnvConfig
from labkit.models import ADAPTER_CONFIG, LoadedModel, load_model, lora_config, model_device, uses_unsloth
from labkit.profiles import PROFILE_OPTION, get_profile
from labkit.protocol import END_OF_TURN
from labkit.rewards import COMPONENTS, GUARDS, RewardConfig, score_episode
from labkit.rollout import GenerationConfig, Rollout, ServedModel, rollout_batch
from labkit.runs import OUT_OPTION, claim_run_folder
from labkit.sft import (
    REPORT_TO_OPTION,
    last_checkpoint,
    library_versions,
    log_callback,
    read_run_card,
    refuse_foreign_model,
    run_arguments,
    run_identity,
    save_trained,
    unsloth_lora,
    write_run_card,
)
from labkit.tasks import Task, load_tasks
from labkit.templates import render
from labkit.trl_compat import GRPOBatchHooks, GRPOLogProbsFromLogits, fused_logprob_kernel_available, log_metric

ROLLOUTS = "rollouts"


@dataclass
class RLRunConfig:
    init: str | None = field(
        default=None,
        metadata={
            "help": "the policy to start from: an SFT run or adapter folder, or a model (default: the profile's)"
        },
    )
    profile: str = field(default="cpu", metadata=PROFILE_OPTION)
    out: str = field(default="runs/rl", metadata=OUT_OPTION)
    tasks: str = field(default="data/tasks/train.jsonl", metadata={"help": "training tasks (JSONL)"})
    # None: the profile's rl size, for this and every field down to save_steps.
    steps: int | None = field(default=None, metadata={"help": "default: the profile's"})
    prompts_per_step: int | None = field(
        default=None, metadata={"help": "distinct tasks per step and process (default: the profile's)"}
    )
    num_generations: int | None = field(
        default=None, metadata={"help": "episodes per task, the group GRPO compares (default: the profile's)"}
    )
    max_new_tokens: int | None = field(default=None, metadata={"option": False})
    max_turns: int | None = field(default=None, metadata={"option": False})
    max_length: int | None = field(default=None, metadata={"option": False})
    learning_rate: float | None = None
    beta: float | None = field(default=None, metadata={"help": "KL coefficient to the init policy"})
    temperature: float | None = field(default=None, metadata={"option": False})
    save_steps: int | None = field(default=None, metadata={"option": False})
    # A step's episodes are accumulated over passes of micro_batch.
    micro_batch: int = field(
        default=4,
        metadata={"help": "episodes per forward/backward pass (default 4); lower it if memory runs out"},
    )
    lora_r: int = field(default=16, metadata={"option": False})
    lora_alpha: int = field(default=32, metadata={"option": False})
    seed: int = 0
    report_to: str = field(default="tensorboard", metadata=REPORT_TO_OPTION)
    # `labkit rl --reward NAME=VALUE` sets it, parsed by hand (labkit.cli.rl_config).
    rewards: RewardConfig = field(default_factory=RewardConfig, metadata={"option": False})
    vllm_server: str | None = field(
        default=None,
        metadata={
            "metavar": "HOST:PORT",
            "help": "generate the rollouts on this vLLM server (GPU machines; see README, Beyond one machine)",
        },
    )
    # Without vllm_server, in one process only.
    engine: str = field(default="auto", metadata=ENGINE_OPTION)

    def __post_init__(self) -> None:
        for name, value in asdict(get_profile(self.profile).rl).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if isinstance(self.rewards, dict):
            self.rewards = RewardConfig.from_dict(self.rewards)
        check_engine(self.engine)
        if self.num_generations < 2:
            raise ValueError("num_generations must be at least 2: GRPO compares episodes within a group")
        self.micro_batch = min(self.micro_batch, self.episodes_per_step)
        if self.episodes_per_step % self.micro_batch:
            raise ValueError(
                f"micro_batch ({self.micro_batch}) must divide the {self.episodes_per_step} episodes of a step"
            )

    @property
    def episodes_per_step(self) -> int:
        return self.prompts_per_step * self.num_generations

    def command(self) -> str:
        """The `labkit rl` command line of this run: every option the CLI offers that differs from its default."""
        default = RLRunConfig(init=self.init, profile=self.profile)
        named = ("init", "profile", "steps", "out")  # always, first and last
        options = [
            f"--{spec.name.replace('_', '-')} {getattr(self, spec.name)}"
            for spec in fields(self)
            if spec.metadata.get("option", True) and spec.name not in named
            if getattr(self, spec.name) != getattr(default, spec.name)
        ]
        options += [
            f"--reward {name}={value}"
            for name, value in asdict(self.rewards).items()
            if value != asdict(default.rewards)[name]
        ]
        return " ".join(
            [
                f"labkit rl --init {self.init} --profile {self.profile} --steps {self.steps}",
                *options,
                f"--out {self.out}",
            ]
        )

    def env_config(self) -> EnvConfig:
        return EnvConfig(max_turns=self.max_turns)

    def generation(self, step: int, rank: int = 0) -> GenerationConfig:
        return GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            batch_size=self.episodes_per_step,
            max_length=self.max_length,
            # A different draw every step and on every process, the same on a rerun.
            seed=self.seed * 100_003 + step + rank * 1_000_000_007,
            logprobs=True,
        )

    def vllm_server_url(self) -> str | None:
        if not self.vllm_server:
            return None
        return self.vllm_server if "://" in self.vllm_server else f"http://{self.vllm_server}"


# ----------------------------------------------------------------------------- one episode, as TRL sees it


@dataclass
class EpisodeTokens:
    """One rollout split the way GRPOTrainer wants it."""

    prompt_ids: list[int]
    completion_ids: list[int]
    env_mask: list[int]  # 1 where the model sampled the token (carries loss), 0 for the environment's tokens
    logprobs: list[float]


def episode_tokens(rollout: Rollout, eos_id: int) -> EpisodeTokens:
    """Split an episode after its first prompt; drop what the environment added after the model's last token.

    Those trailing tokens (the last tool result of an episode that ran out of turns) carry
    no loss, so scoring them would only cost time. An ``<|im_end|>`` the engine added to a
    truncated turn stays, so every completion ends as the template ends a turn.
    """
    n = rollout.prompt_length
    ids, owner = rollout.token_ids, rollout.owner
    last = max((i for i in range(n, len(ids)) if owner[i]), default=None)
    if last is None:  # the prompt left no room for a turn: one masked token keeps TRL's shapes valid
        return EpisodeTokens(ids[:n], [eos_id], [0], [0.0])
    end = last + 2 if last + 1 < len(ids) and ids[last + 1] == eos_id else last + 1
    logprobs = rollout.logprobs[n:end] if rollout.logprobs else [0.0] * (end - n)
    return EpisodeTokens(ids[:n], ids[n:end], owner[n:end], logprobs)


def loss_spans(tokens: EpisodeTokens, tokenizer) -> list[list]:
    """The completion as ``[text, carried_loss]`` runs, for the trace viewer."""
    spans: list[list] = []
    start = 0
    for i in range(1, len(tokens.completion_ids) + 1):
        if i == len(tokens.completion_ids) or tokens.env_mask[i] != tokens.env_mask[start]:
            text = tokenizer.decode(tokens.completion_ids[start:i], skip_special_tokens=False)
            spans.append([text, bool(tokens.env_mask[start])])
            start = i
    return spans


def turn_counts(row: dict) -> dict[str, float]:
    phases = row["phases"]
    turns = max(1, len(phases))
    return {
        "tool_call_rate": sum(p in ("trial", "execution") for p in phases) / turns,
        "trials": float(phases.count("trial")),
        "turns": float(len(phases)),
        "success": float(row["success"]),
    }


class EpisodeRollouts:
    """GRPOTrainer's ``rollout_func``: each prompt's task played as a live episode by the lab's rollout engine.

    TRL passes only the prompts; the tasks come from the trainer (:func:`grpo_trainer_class`
    records each batch's). Besides TRL's keys it returns ``reward_components`` for the
    reward functions, and it keeps the batch's trace rows so the trainer can log them
    with their advantages. Under ``accelerate launch`` each process plays only its own
    share of the step's tasks.
    """

    def __init__(self, config: RLRunConfig, tokenizer, catalog=None):
        from labkit.tools import load_catalog

        self.config, self.tokenizer = config, tokenizer
        self.catalog = catalog or load_catalog()
        self.eos_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
        self.rows: list[dict] = []
        self.last_rollouts: list[Rollout] = []
        self.seconds = {"rollout": 0.0, "environment": 0.0}
        self.served: ServedModel | None = None

    def play(self, model, tasks: list[Task], step: int, rank: int = 0) -> list[Rollout]:
        """Play the tasks with ``model``: a (PEFT) model in this process, or a :class:`ServedModel`."""
        import torch

        gen = self.config.generation(step, rank)
        if isinstance(model, ServedModel):
            return rollout_batch(
                model, self.tokenizer, tasks, self.catalog, self.config.env_config(), gen, progress=False
            )
        # Generation with the LoRA folded into the weights skips two small matmuls per layer per token.
        merged = hasattr(model, "merge_adapter")
        was_training = model.training
        model.eval()
        if merged:
            model.merge_adapter()
        try:
            with torch.no_grad():
                return rollout_batch(
                    model, self.tokenizer, tasks, self.catalog, self.config.env_config(), gen, progress=False
                )
        finally:
            if merged:
                model.unmerge_adapter()
            model.train(was_training)

    def policy(self, trainer):
        """A context that yields what generates this step's turns: the vLLM server (TRL has just sent it the
        current weights), or the trainer's model, unwrapped from DDP or DeepSpeed."""
        from contextlib import nullcontext

        if not trainer.use_vllm and self.config.engine != "transformers" and trainer.accelerator.num_processes == 1:
            return nullcontext(self._on_engine(trainer.accelerator.unwrap_model(trainer.model_wrapped)))
        if trainer.use_vllm:
            if self.served is None:  # every process has its own HTTP client; TRL's own one lives on the main process
                from trl.generation.vllm_client import VLLMClient

                client = VLLMClient(
                    base_url=self.config.vllm_server_url(), connection_timeout=trainer.args.vllm_server_timeout
                )
                self.served = ServedModel(client, self.eos_id)
            return nullcontext(self.served)
        deepspeed = trainer.accelerator.state.deepspeed_plugin
        # ZeRO-3: gather the sharded weights for the rollout, then split them again.
        if deepspeed is not None and deepspeed.zero_stage == 3:
            from trl.models import unwrap_model_for_generation

            return unwrap_model_for_generation(
                trainer.model_wrapped,
                trainer.accelerator,
                gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
            )
        return nullcontext(trainer.accelerator.unwrap_model(trainer.model_wrapped))

    def _on_engine(self, model):
        """The current policy on the local vLLM engine: its adapter merged in for the weight push, then taken out
        again. Falls back to ``model`` itself where ``auto`` finds no working engine."""
        from labkit.engine import rollout_model

        merged = hasattr(model, "merge_adapter")
        if merged:
            model.merge_adapter()
        try:
            return rollout_model(
                LoadedModel(model, self.tokenizer, self.config.out), self.config.engine, self.config.profile
            )
        finally:
            if merged:
                model.unmerge_adapter()

    def __call__(self, prompts: list, trainer) -> dict:
        tasks = trainer.batch_tasks
        if len(tasks) != len(prompts):
            raise RuntimeError(f"rollout_func got {len(prompts)} prompts for {len(tasks)} tasks")
        started = time.perf_counter()
        with self.policy(trainer) as model:
            rollouts = self.play(model, tasks, trainer.state.global_step, trainer.accelerator.process_index)
        self.last_rollouts = rollouts
        self.seconds = {"rollout": time.perf_counter() - started, "environment": sum(r.env_seconds for r in rollouts)}
        split = [episode_tokens(r, self.eos_id) for r in rollouts]
        self.rows = []
        for rollout, tokens in zip(rollouts, split):
            row = trajectory_row(rollout.trajectory, policy=f"rl:{self.config.out}")
            score = score_episode(row, self.config.rewards, self.config.max_turns, rollout.problems)
            row.update(
                reward=score.total,
                rewards=score.components,
                guards=score.guards,
                loss_spans=loss_spans(tokens, self.tokenizer),
            )
            self.rows.append(row)
        self._log(trainer)
        return {
            "prompt_ids": [t.prompt_ids for t in split],
            "completion_ids": [t.completion_ids for t in split],
            "logprobs": [t.logprobs for t in split],
            "env_mask": [t.env_mask for t in split],
            "reward_components": [row["rewards"] for row in self.rows],
        }

    def _log(self, trainer) -> None:
        # log_metric averages over every process's values, not just this one's.
        for row in self.rows:
            for name, value in turn_counts(row).items():
                log_metric(trainer, f"episode/{name}", value)
            for name in GUARDS:
                log_metric(trainer, f"guards/{name}", float(row["guards"][name]))
        log_metric(trainer, "time/rollout_s", self.seconds["rollout"])
        log_metric(trainer, "time/environment_s", self.seconds["environment"])


def reward_function(name: str) -> Callable:
    """A TRL reward function for one component, so TRL weighs it and logs it under its own name."""

    def reward(completions, reward_components, **unused):
        return [components[name] for components in reward_components]

    reward.__name__ = name
    return reward


# ----------------------------------------------------------------------------- the trainer


def grpo_trainer_class():
    """GRPOTrainer that knows each batch's tasks and logs every episode; on CPU it also scores tokens from logits.

    TRL 1.15 computes per-token log-probs with a fused LM head made of Triton kernels,
    which the CPU torch wheel lacks (the same gap :func:`labkit.sft.sft_trainer_class`
    fills for SFT). On CPU the subclass computes them from the model's logits
    (:class:`labkit.trl_compat.GRPOLogProbsFromLogits`).
    """
    from accelerate.utils import gather_object
    from trl import GRPOTrainer

    class LabGRPOTrainer(GRPOBatchHooks, GRPOTrainer):
        def on_batch(self, inputs):
            self.batch_tasks = [Task.from_row(json.loads(x["task"])) for x in inputs]

        def on_scored_batch(self, output):
            # Every process's episodes, in process order: the order TRL gathers rewards in, so groups stay whole.
            rows = gather_object(self.rollout_func.rows)
            advantages = self.accelerator.gather(output["advantages"]).tolist()
            if self.accelerator.is_main_process:
                write_rollout_log(
                    Path(self.args.output_dir).parent,
                    self.state.global_step + 1,
                    rows,
                    advantages,
                    self.num_generations,
                )

    if fused_logprob_kernel_available():
        return LabGRPOTrainer

    class LogitsGRPOTrainer(GRPOLogProbsFromLogits, LabGRPOTrainer):
        pass

    return LogitsGRPOTrainer


def write_rollout_log(out: Path, step: int, rows: list[dict], advantages: list[float], group_size: int) -> Path:
    """One JSONL file per step, written whole and renamed into place, so a killed run leaves no half step."""
    folder = out / ROLLOUTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:05d}.jsonl"
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for i, (row, advantage) in enumerate(zip(rows, advantages)):
            f.write(
                json.dumps({**row, "step": step, "group": i // group_size, "advantage": advantage}, ensure_ascii=False)
                + "\n"
            )
    tmp.replace(path)
    return path


def read_rollout_log(out: str | Path) -> list[dict]:
    rows = []
    for path in sorted((Path(out) / ROLLOUTS).glob("step-*.jsonl")):
        rows += read_rows(path)
    return rows


def prompt_dataset(config: RLRunConfig):
    """One row per training task: the opening messages (what TRL logs) and the task itself."""
    from datasets import Dataset

    from labkit.protocol import SYSTEM_PROMPT

    tasks = load_tasks(config.tasks)
    return Dataset.from_list(
        [
            {
                "prompt": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": t.query}],
                "task": t.to_json(),
            }
            for t in tasks
        ]
    )


def build_trainer(
    config: RLRunConfig, loaded: LoadedModel, progress: bool = True, on_log: Callable[[dict], None] | None = None
):
    from trl import GRPOConfig

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL 1.15, which we pin
    weights = config.rewards.weights()
    enabled = config.rewards.enabled()
    if not enabled:
        raise ValueError(
            "every reward component has weight 0: switch at least one on (outcome is the one that matters)"
        )
    if config.vllm_server and importlib.util.find_spec("vllm") is None:
        raise ValueError(
            f"--vllm-server {config.vllm_server} needs vLLM on the training machines too (`make gpu` installs it)"
        )
    # Server mode: TRL connects to the server and pushes the weights to it before every step; the
    # rollouts themselves come from EpisodeRollouts, which asks the server for each turn.
    serving = (
        dict(use_vllm=True, vllm_mode="server", vllm_server_base_url=config.vllm_server_url())
        if config.vllm_server
        else {}
    )
    args = GRPOConfig(
        max_steps=config.steps,
        # One rollout of every episode in the step, then one optimizer step over them in micro-batches:
        # the full-vocabulary logits of 16 long episodes at once do not fit in 24 GB.
        per_device_train_batch_size=config.micro_batch,
        gradient_accumulation_steps=config.episodes_per_step // config.micro_batch,
        num_generations=config.num_generations,
        learning_rate=config.learning_rate,
        lr_scheduler_type="constant",
        beta=config.beta,
        temperature=config.temperature,
        max_completion_length=config.max_length,
        reward_weights=[weights[name] for name in enabled],
        **serving,
        **run_arguments(config.out, config.seed, config.save_steps, config.report_to, progress),
    )
    model, peft_config = loaded.model, None
    if uses_unsloth(config.profile):
        model = unsloth_lora(model, config.lora_r, config.lora_alpha, config.seed)
    else:
        peft_config = lora_config(config.lora_r, config.lora_alpha)
    trainer = grpo_trainer_class()(
        model=model.train(),
        reward_funcs=[reward_function(name) for name in enabled],
        args=args,
        train_dataset=prompt_dataset(config),
        processing_class=loaded.tokenizer,
        peft_config=peft_config,
        rollout_func=EpisodeRollouts(config, loaded.tokenizer),
    )
    if trainer.is_fsdp_enabled and not config.vllm_server:
        # FSDP gathers each layer's weights inside every forward, a collective step; ranks whose episodes end
        # after different numbers of turns would wait on each other forever. ZeRO-3 gathers them once per rollout.
        raise ValueError(
            "labkit rl under FSDP needs --vllm-server for its rollouts; or use configs/accelerate/zero3.yaml"
        )
    if not progress:  # without tqdm the Trainer prints every raw log dict instead; on_log is the quiet way to follow
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    if on_log is not None:
        trainer.add_callback(log_callback(on_log))
    return trainer


# ----------------------------------------------------------------------------- a run, resumable


def drop_steps_after(out: Path, step: int) -> None:
    """Forget the rollout logs of steps a resume will play again, so no step is logged twice."""
    for path in (out / ROLLOUTS).glob("step-*.jsonl"):
        if int(path.stem.split("-")[1]) > step:
            path.unlink()


def train_rl(
    config: RLRunConfig,
    progress: bool = True,
    on_log: Callable[[dict], None] | None = None,
    loaded: LoadedModel | None = None,
) -> dict:
    """Train (or resume, or just return the finished run's card). Returns the run card."""
    out = Path(config.out)
    refuse_foreign_model(out, "rl")
    claim_run_folder(out, run_identity(config), config.command())
    card = read_run_card(out)
    if card is not None:
        return card
    # An adapter comes merged: GRPO's LoRA trains on top.
    loaded = loaded or load_model(config.init, profile=config.profile)
    trainer = build_trainer(config, loaded, progress, on_log)
    main = trainer.accelerator.is_main_process
    resume = last_checkpoint(out)
    if main:
        drop_steps_after(out, int(Path(resume).name.split("-")[-1]) if resume else 0)
    started = time.time()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.time() - started
    save_trained(trainer, out, loaded.tokenizer)
    card = run_card(config, trainer, seconds, resume)
    if main:
        # unsloth loads an adapter init as its own PEFT model and trains that adapter on: nothing to stack.
        if not uses_unsloth(config.profile):
            stack_on_init(out, config.init)
        _write_card(out, card)
    trainer.accelerator.wait_for_everyone()  # no process returns before the run is complete on disk
    return card


def stack_on_init(out: Path, init: str | Path) -> None:
    """Name the init policy as the adapter's base when it is itself an adapter, so loading rebuilds SFT + GRPO.

    The path is relative to the adapter's own folder, so the two adapters can be copied together.
    """
    if not (Path(init) / ADAPTER_CONFIG).is_file():
        return
    path = Path(out) / ADAPTER_CONFIG
    adapter = json.loads(path.read_text())
    adapter["base_model_name_or_path"] = os.path.relpath(Path(init).resolve(), Path(out).resolve())
    path.write_text(json.dumps(adapter, indent=2) + "\n")


def step_history(trainer) -> list[dict]:
    """One entry per logged step: reward, its components, success, trials, guards, KL and timings."""
    keep = ("reward", "kl", "frac_reward_zero_std", "step_time", "loss")
    history = []
    for entry in trainer.state.log_history:
        if "reward" not in entry:
            continue
        picked = {k: entry[k] for k in keep if k in entry}
        picked.update({k: v for k, v in entry.items() if k.startswith(("rewards/", "episode/", "guards/", "time/"))})
        history.append({"step": entry["step"], **picked})
    return history


def run_card(config: RLRunConfig, trainer, seconds: float, resumed_from: str | None) -> dict:
    history = step_history(trainer)
    last = history[-5:]

    def mean(key: str, entries: list[dict]) -> float | None:
        values = [e[key] for e in entries if e.get(key) is not None]
        return sum(values) / len(values) if values else None

    step_time = mean("step_time", history)
    rollout_time = mean("time/rollout_s", history)
    env_time = mean("time/environment_s", history)
    return {
        "command": config.command(),
        "config": asdict(config),
        "device": model_device(),
        "bf16": bool(trainer.args.bf16),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "steps": trainer.state.global_step,
        "processes": trainer.accelerator.num_processes,
        "episodes_per_step": config.episodes_per_step * trainer.accelerator.num_processes,
        "resumed_from": resumed_from,
        "seconds": round(seconds, 1),
        "seconds_per_step": step_time,
        "time_shares": {
            "generation": (rollout_time - env_time) / step_time if step_time and rollout_time is not None else None,
            "environment": env_time / step_time if step_time and env_time is not None else None,
            "training": 1 - rollout_time / step_time if step_time and rollout_time is not None else None,
        },
        "first_steps": {
            k: mean(k, history[:5]) for k in ("reward", "episode/success", "episode/trials", "episode/tool_call_rate")
        },
        "last_steps": {
            k: mean(k, last)
            for k in (
                "reward",
                "episode/success",
                "episode/trials",
                "episode/tool_call_rate",
                "kl",
                "frac_reward_zero_std",
            )
        },
        "history": history,
        "versions": library_versions(),
    }


def _write_card(out: Path, card: dict) -> None:
    from labkit.plots import rl_curves

    write_run_card(
        out, card, _card_markdown(card), rl_curves({Path(card["config"]["out"]).name: card["history"]}), "curves.png"
    )


def _card_markdown(card: dict) -> str:
    config = card["config"]
    return render(
        "rl_card.md.jinja",
        card=card,
        config=config,
        first=card["first_steps"],
        last=card["last_steps"],
        shares=card["time_shares"],
        weights=", ".join(f"{name} {config['rewards'][name]}" for name in COMPONENTS),
        resumed_from=Path(card["resumed_from"]).name if card["resumed_from"] else None,
    )
