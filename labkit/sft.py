"""Supervised fine-tuning on teacher trajectories: TRL's SFTTrainer with a LoRA adapter.

    labkit sft --data data/trajectories/trial-train --policy smollm2-135m --profile cpu --out runs/sft-trial

The loss is assistant-only: the model learns every token of its own turns (the
``<trial>``/``<execute>`` reason, the tool call, the answer and ``<|im_end|>``),
while the system prompt, the task, tool results and the environment's feedback
are context it reads but is never trained to write. TRL builds that mask from
the chat template's ``{% generation %}`` markers (:mod:`labkit.protocol`).

Rows longer than ``max_length`` are left out rather than cut: a cut trajectory
teaches a conversation that never reaches its answer. ``token_budget`` then
takes shuffled rows until their tokens reach it, so two datasets can be
compared at the same number of training tokens (the ablation's matched budgets).

The run folder is a policy once training ends (``labkit eval --policy RUN``
loads the adapter onto its base):

    RUN/adapter_model.safetensors, adapter_config.json, tokenizer files
    RUN/checkpoints/checkpoint-N/   every save_steps; rerunning the command resumes from the newest
    RUN/checkpoints/runs/           TensorBoard logs (``report_to``)
    RUN/run_card.json, README.md    data, config, seed, times, final metrics; written last
    RUN/loss.png

Under ``accelerate launch`` (``configs/accelerate/``) every process trains on its
own share of each batch and only the main process writes the run folder.

LoRA rather than full fine-tuning: on the 135M model on 2 CPU cores LoRA is the
faster of the two (185 vs 159 tokens/s, ``python -m bench sft``), keeps the base
frozen, ships as a 10 MB bf16 adapter instead of a 540 MB model, and is what
unsloth trains on the GPU. ``--full`` trains every weight instead.

Longer than the lab's ~450 lines per module: the config, the data budget, the trainer and the resumable run
folder are one stage's contract, read top to bottom as the run happens.
"""

from __future__ import annotations

import functools
import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from labkit.data import DatasetFileError, dataset_fingerprint, load_dataset_dir, token_lengths
from labkit.engine import stop_shared_engine
from labkit.models import ADAPTER_CONFIG, TINY_NAME, LoadedModel, load_model, lora_config, model_device, uses_unsloth
from labkit.profiles import PROFILE_OPTION, get_profile
from labkit.runs import OUT_OPTION, claim_run_folder
from labkit.templates import render
from labkit.trl_compat import fused_logprob_kernel_available, record_metric

RUN_CARD = "run_card.json"
CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"  # transformers' TRAINER_STATE_NAME, the last file of a checkpoint it writes
REPORT_TO_OPTION = {"help": "tensorboard (default), trackio, wandb or none"}  # `labkit sft` and `labkit rl`


@dataclass
class SFTRunConfig:
    """One SFT run. ``None`` fields take the profile's :class:`~labkit.profiles.SFTSize`."""

    data: str = field(
        default="data/trajectories/trial-train", metadata={"help": "a trajectory dataset folder from `labkit teach`"}
    )
    policy: str | None = field(default=None, metadata={"help": "the base model (default: the profile's)"})
    profile: str = field(default="cpu", metadata=PROFILE_OPTION)
    out: str = field(default="runs/sft-trial", metadata=OUT_OPTION)
    token_budget: int | None = field(
        default=None, metadata={"help": "training tokens per epoch (default: the profile's)"}
    )
    max_length: int | None = field(
        default=None, metadata={"help": "leave out rows longer than this (default: the profile's)"}
    )
    epochs: float | None = None
    batch_size: int | None = None
    grad_accum: int = field(default=1, metadata={"option": False})
    learning_rate: float | None = None
    full: bool = field(default=False, metadata={"help": "train every weight instead of a LoRA adapter"})
    lora_r: int = field(default=16, metadata={"option": False})
    lora_alpha: int = field(default=32, metadata={"option": False})
    seed: int = 0
    save_steps: int | None = field(default=None, metadata={"option": False})
    report_to: str = field(default="tensorboard", metadata=REPORT_TO_OPTION)

    def __post_init__(self) -> None:
        profile = get_profile(self.profile)
        size = profile.sft
        self.policy = self.policy or profile.model
        for name in ("max_length", "epochs", "batch_size", "learning_rate", "save_steps"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(size, name))
        if self.token_budget is None:
            self.token_budget = size.token_budget
        if self.token_budget is not None and self.token_budget <= 0:
            raise ValueError(f"token_budget must be positive (got {self.token_budget})")
        if self.full and self.learning_rate == size.learning_rate:
            self.learning_rate = size.learning_rate / 10  # full fine-tuning wants a smaller step than LoRA

    def command(self) -> str:
        budget = f" --token-budget {self.token_budget}" if self.token_budget else ""
        return (
            f"labkit sft --data {self.data} --policy {self.policy} --profile "
            f"{self.profile}{budget} --seed {self.seed} --out {self.out}"
        )


class SFTDataError(DatasetFileError):
    """Training data that cannot be used as it is, with what to do about it."""


# ----------------------------------------------------------------------------- the data


@dataclass
class TrainingData:
    dataset: object  # datasets.Dataset with the columns SFTTrainer reads: messages, tools
    tokens: int  # template tokens of the rows kept
    kept: int
    too_long: int  # rows left out because they exceed max_length
    unused: int  # rows that fit but lie beyond the token budget
    fingerprint: str  # sha256 of the data file, for the run card


def training_data(config: SFTRunConfig, tokenizer) -> TrainingData:
    """The rows to train on: those that fit ``max_length``, shuffled by the seed, cut to the token budget."""
    dataset = load_dataset_dir(config.data)
    if len(dataset) == 0:  # checked first: a teacher that solved nothing writes a dataset without columns
        raise SFTDataError(f"{config.data} holds no trajectories; make some with `labkit teach`")
    missing = {"messages", "tools"} - set(dataset.column_names)
    if missing:
        raise SFTDataError(
            f"{config.data} has no {', '.join(sorted(missing))} column; make trajectories with `labkit teach`"
        )
    lengths = token_lengths(dataset, tokenizer)
    order = list(range(len(dataset)))
    random.Random(config.seed).shuffle(order)
    fits = [i for i in order if lengths[i] <= config.max_length]
    if not fits:
        raise SFTDataError(
            f"every row of {config.data} is longer than max_length={config.max_length} tokens "
            f"(shortest: {min(lengths)}); raise --max-length"
        )
    chosen, tokens = [], 0
    for i in fits:
        if config.token_budget is not None and tokens + lengths[i] > config.token_budget:
            break
        chosen.append(i)
        tokens += lengths[i]
    return TrainingData(
        dataset=dataset.select(chosen).select_columns(["messages", "tools"]),
        tokens=tokens,
        kept=len(chosen),
        too_long=len(dataset) - len(fits),
        unused=len(fits) - len(chosen),
        fingerprint=dataset_fingerprint(config.data),
    )


def run_identity(config) -> dict:
    """What makes a run what it is: its configuration, less where it is written and how it logs and batches."""
    return {k: v for k, v in asdict(config).items() if k not in ("out", "report_to", "micro_batch", "vllm_server")}


# ----------------------------------------------------------------------------- the trainer


def bf16_ok() -> bool:
    """bf16 autocast where the hardware does it natively: ~1.4x faster LoRA
    steps on AVX-512 CPUs (measured on the 2-core machines CI runs on)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def report_backend(name: str) -> str:
    """``tensorboard`` (the default) only when it is installed, so a bare install still trains."""
    import importlib.util

    if (
        name == "tensorboard"
        and importlib.util.find_spec("tensorboard") is None
        and importlib.util.find_spec("tensorboardX") is None
    ):
        return "none"
    return name


def run_arguments(out: str | Path, seed: int, save_steps: int, report_to: str, progress: bool) -> dict:
    """The Trainer arguments every labkit training run shares (SFT and GRPO): where, how often, how logged, on what."""
    import torch

    return dict(
        output_dir=str(Path(out) / CHECKPOINTS),
        logging_steps=1,
        save_steps=save_steps,
        save_total_limit=2,
        seed=seed,
        data_seed=seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=bf16_ok(),
        gradient_checkpointing=False,  # at 135M the activations fit; recomputing them costs ~30% on a CPU
        # LoRA uses all its weights every step: under DDP, don't search the graph for unused ones
        ddp_find_unused_parameters=False,
        report_to=report_backend(report_to),
        disable_tqdm=not progress,
    )


def log_callback(on_log: Callable[[dict], None]):
    from transformers import TrainerCallback

    class ForwardLogs(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                on_log({"step": state.global_step, "max_steps": state.max_steps, **logs})

    return ForwardLogs()


def sft_trainer_class():
    """TRL's SFTTrainer, or on CPU a subclass whose loss reads the model's own logits.

    TRL 1.15 computes the SFT loss with a fused LM head made of Triton kernels; the
    CPU torch wheel has no Triton, and Triton needs a GPU anyway. The subclass does
    what transformers' ``Trainer.compute_loss`` does (cross-entropy over the labels
    TRL built, so the assistant-only mask holds) and logs token accuracy as TRL does.
    """
    from transformers import Trainer
    from trl import SFTTrainer

    if fused_logprob_kernel_available():
        return SFTTrainer

    class LogitsSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs["use_cache"] = False
            loss, outputs = Trainer.compute_loss(
                self, model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
            )
            labels = inputs["labels"][:, 1:]
            valid = labels != -100
            correct = (outputs.logits[:, :-1].argmax(-1) == labels) & valid
            mode = "train" if self.model.training else "eval"
            record_metric(self, mode, "mean_token_accuracy", correct.sum().item() / max(1, valid.sum().item()))
            return (loss, outputs) if return_outputs else loss

    return LogitsSFTTrainer


def build_trainer(
    config: SFTRunConfig,
    loaded: LoadedModel,
    dataset,
    progress: bool = True,
    on_log: Callable[[dict], None] | None = None,
):
    """TRL's SFTTrainer for this run: assistant-only loss, LoRA (or full), checkpoints under ``RUN/checkpoints``."""
    from trl import SFTConfig

    args = SFTConfig(
        assistant_only_loss=True,
        max_length=config.max_length,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        train_sampling_strategy="group_by_length",  # less padding per batch: on a CPU every pad token costs
        **run_arguments(config.out, config.seed, config.save_steps, config.report_to, progress),
    )
    if not progress:  # the quiet way (notebooks) follows on_log: no bars from the datasets library's preparation either
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    model, peft_config = loaded.model, None
    if not config.full:
        if uses_unsloth(config.profile) and config.policy != TINY_NAME:
            model = unsloth_lora(model, config.lora_r, config.lora_alpha, config.seed)
        else:
            peft_config = lora_config(config.lora_r, config.lora_alpha)
    trainer = sft_trainer_class()(
        model=model.train(),
        args=args,
        train_dataset=dataset,
        processing_class=loaded.tokenizer,
        peft_config=peft_config,
    )
    if not progress:  # without tqdm the Trainer prints every raw log dict instead
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    if on_log is not None:
        trainer.add_callback(log_callback(on_log))
    return trainer


def unsloth_lora(model, r: int, alpha: int, seed: int):
    """unsloth's own LoRA wrapper and gradient checkpointing
    (GPU only: load_model only returns unsloth models there)."""
    from unsloth import FastLanguageModel

    return FastLanguageModel.get_peft_model(
        model,
        r=r,
        lora_alpha=alpha,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        use_gradient_checkpointing="unsloth",
        random_state=seed,
    )


# ----------------------------------------------------------------------------- a run, resumable


def last_checkpoint(out: str | Path) -> str | None:
    """The newest whole checkpoint to resume from, or None.

    The Trainer writes ``trainer_state.json`` after the weights, optimizer and RNG states, straight into
    ``checkpoint-N``: a kill during a save leaves a folder without it (or with it cut short). Such a folder is
    passed over for the previous whole one, and the Trainer writes over it when it reaches that step again.
    """
    folder = Path(out) / CHECKPOINTS
    steps = sorted((int(p.name[11:]) for p in folder.glob("checkpoint-*") if p.name[11:].isdigit()), reverse=True)
    whole = next(
        (folder / f"checkpoint-{step}" for step in steps if _whole_checkpoint(folder / f"checkpoint-{step}")), None
    )
    if whole is None:
        return None
    _load_onto_indexed_cpu()  # so that a multi-process CPU run can resume from it too
    return str(whole)


def _whole_checkpoint(path: Path) -> bool:
    try:
        state = json.loads((path / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing or cut short
        return False
    return isinstance(state, dict) and isinstance(state.get("global_step"), int)


@functools.cache  # register once per process
def _load_onto_indexed_cpu() -> None:
    """Let ``torch.load`` map tensors to ``cpu:0``.

    accelerate names the device of each process in a multi-process CPU run ``cpu:0``,
    and with several processes the Trainer loads a checkpoint's optimizer state onto
    that device, but torch only knows the CPU as ``cpu``: the resume would fail.
    """
    import torch

    def keep_on_cpu(storage, location: str):
        return storage if location.startswith("cpu:") else None

    torch.serialization.register_package(99, lambda storage: None, keep_on_cpu)  # 99: a priority no other package uses


def read_run_card(out: str | Path) -> dict | None:
    """The finished run's card, or None while the run is missing or unfinished."""
    path = Path(out) / RUN_CARD
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # a card is written atomically, so this is someone's edit: train again


def refuse_foreign_model(out: Path, stage: str) -> None:
    """A folder with a model (an adapter, or full weights) but none of our checkpoints was made elsewhere:
    ``labkit sft`` or ``rl`` must never train over it."""
    holds_model = (out / ADAPTER_CONFIG).is_file() or (out / "config.json").is_file()
    if holds_model and not (out / CHECKPOINTS).is_dir():
        raise FileExistsError(
            f"{out} holds a model that no `labkit {stage}` run made; choose another --out or delete the folder"
        )


def train_sft(
    config: SFTRunConfig,
    progress: bool = True,
    on_log: Callable[[dict], None] | None = None,
    loaded: LoadedModel | None = None,
) -> dict:
    """Train (or resume, or just return the finished run's card). Returns the run card."""
    out = Path(config.out)
    refuse_foreign_model(out, "sft")
    claim_run_folder(out, {**run_identity(config), "data_sha256": dataset_fingerprint(config.data)}, config.command())
    card = read_run_card(out)
    if card is not None:
        return card
    stop_shared_engine()  # an evaluation's idle vLLM server would take CPU from the trainer
    # An adapter comes merged: a new one trains on top.
    loaded = loaded or load_model(config.policy, profile=config.profile)
    data = training_data(config, loaded.tokenizer)
    trainer = build_trainer(config, loaded, data.dataset, progress, on_log)
    resume = last_checkpoint(out)
    started = time.time()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.time() - started
    save_trained(trainer, out, loaded.tokenizer, full=config.full)
    card = run_card(config, data, trainer, seconds, resume)
    if trainer.accelerator.is_main_process:
        _write_card(out, card)
    trainer.accelerator.wait_for_everyone()  # no process returns before the run is complete on disk
    return card


def save_trained(trainer, out: Path, tokenizer, full: bool = False) -> None:
    """Save the trained adapter (or with ``full`` the whole model) and the tokenizer into the run folder.

    Every process must call it: under ZeRO-3 or FSDP the weights are sharded, and
    gathering them takes all processes. Only the main process writes.
    """
    if full:
        trainer.save_model(str(out))  # the Trainer gathers and writes on the main process itself
        return
    state = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    if trainer.accelerator.is_main_process:
        model = trainer.accelerator.unwrap_model(trainer.model)
        # LoRA never touches the embeddings; saying so spares PEFT a hub lookup for the base's config.
        model.save_pretrained(str(out), state_dict=state, save_embedding_layers=False)
        tokenizer.save_pretrained(str(out))


def run_card(config: SFTRunConfig, data: TrainingData, trainer, seconds: float, resumed_from: str | None) -> dict:
    history = [entry for entry in trainer.state.log_history if "loss" in entry]
    steps_this_session = trainer.state.global_step - (
        int(Path(resumed_from).name.split("-")[-1]) if resumed_from else 0
    )
    tokens_per_step = data.tokens * config.epochs / max(1, trainer.state.max_steps)
    return {
        "command": config.command(),
        "config": asdict(config),
        "data": {
            "path": config.data,
            "sha256": data.fingerprint,
            "rows": data.kept,
            "tokens": data.tokens,
            "too_long": data.too_long,
            "unused": data.unused,
        },
        "method": "full" if config.full else f"LoRA r={config.lora_r} alpha={config.lora_alpha}, all linear layers",
        "bf16": bool(trainer.args.bf16),
        "device": model_device(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "steps": trainer.state.global_step,
        "processes": trainer.accelerator.num_processes,
        "resumed_from": resumed_from,
        "seconds": round(seconds, 1),
        "tokens_per_second": round(tokens_per_step * steps_this_session / max(seconds, 1e-9), 1),
        "final_loss": history[-1]["loss"] if history else None,
        "mean_loss_last_10": sum(e["loss"] for e in history[-10:]) / len(history[-10:]) if history else None,
        # The Trainer's own mean is off after a resume.
        "mean_loss": sum(e["loss"] for e in history) / len(history) if history else None,
        "loss_curve": [[e["step"], e["loss"]] for e in history],
        "versions": library_versions(),
    }


def library_versions() -> dict[str, str]:
    """The versions a run card records: what made the run, for whoever reruns it."""
    import peft
    import torch
    import transformers
    import trl

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "peft": peft.__version__,
    }


def _write_card(out: Path, card: dict) -> None:
    from labkit.plots import loss_curve

    write_run_card(
        out, card, _card_markdown(card), loss_curve({Path(card["data"]["path"]).name: card["loss_curve"]}), "loss.png"
    )


def write_run_card(out: Path, card: dict, markdown: str, figure, figure_name: str) -> None:
    """A finished run's figure, README.md and run_card.json; the
    card goes last, so its presence means the run is complete."""
    from labkit.plots import save

    save(figure, out / figure_name, card["command"])
    (out / "README.md").write_text(markdown, encoding="utf-8")
    tmp = out / f".{RUN_CARD}.tmp"
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    tmp.replace(out / RUN_CARD)  # atomic


def _card_markdown(card: dict) -> str:
    return render(
        "sft_card.md.jinja",
        card=card,
        config=card["config"],
        data=card["data"],
        dataset=Path(card["data"]["path"]).name,
        resumed_from=Path(card["resumed_from"]).name if card["resumed_from"] else None,
    )


SHIPPED_FILES = ("adapter_config.json", RUN_CARD, "README.md", "loss.png", "curves.png")  # those a run has


def ship_adapter(run: str | Path, dest: str | Path) -> Path:
    """Copy a finished LoRA run into ``dest`` to ship with the
    lab: its adapter (in bf16, half the bytes), card, plot, and
    for a GRPO run its last step's episodes."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    run, dest = Path(run), Path(dest)
    if read_run_card(run) is None or not (run / ADAPTER_CONFIG).is_file():
        raise FileNotFoundError(
            f"{run} is not a finished LoRA run (no {RUN_CARD} or {ADAPTER_CONFIG}); "
            f"train it with `labkit sft` or `labkit rl --out {run}`"
        )
    dest.mkdir(parents=True, exist_ok=True)
    weights = {name: tensor.to(torch.bfloat16) for name, tensor in load_file(run / "adapter_model.safetensors").items()}
    save_file(weights, dest / "adapter_model.safetensors", metadata={"format": "pt"})
    for name in SHIPPED_FILES:
        if (run / name).is_file():
            shutil.copy2(run / name, dest / name)
    steps = sorted((run / "rollouts").glob("step-*.jsonl"))
    if steps:  # a GRPO run: its last step's episodes, so notebook 04 and the trace viewer can show a group offline
        shutil.rmtree(dest / "rollouts", ignore_errors=True)  # a run shipped here before left its own last step
        (dest / "rollouts").mkdir()
        shutil.copy2(steps[-1], dest / "rollouts" / steps[-1].name)
    return dest
