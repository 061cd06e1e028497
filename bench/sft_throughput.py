"""labkit's SFT against a plain TRL SFTTrainer script, on the same rows of the same data and the same model.

The baseline is what a user would write from TRL's docs: ``SFTConfig`` defaults
(gradient checkpointing on, random batches, fp32 on CPU) plus the same LoRA and
assistant-only loss, on the model as transformers loads it ("sdpa" attention).
TRL 1.15's own loss needs Triton, which CPU machines lack, so on CPU both arms
compute it from the logits (labkit's loss override; the one change a plain
script needs to run at all). labkit's arm is :func:`labkit.sft.build_trainer`:
grouped-query attention, no gradient checkpointing, length-grouped batches,
bf16 autocast where the CPU has it. A third arm trains every weight (``--full``),
the measurement behind choosing LoRA.

Run: python -m bench sft
"""

from __future__ import annotations

import time
from dataclasses import replace

from labkit.models import embedded_model_dir, load_model, load_tokenizer, lora_config
from labkit.sft import SFTRunConfig, build_trainer, sft_trainer_class, training_data


def _plain_trl(dataset, tokenizer, config: SFTRunConfig, steps: int):
    import torch
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig

    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir(), dtype=torch.float32)
    args = SFTConfig(
        output_dir="/tmp/labkit-bench-sft-plain",
        assistant_only_loss=True,
        max_length=config.max_length,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        max_steps=steps,
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=config.seed,
    )
    peft = lora_config(config.lora_r, config.lora_alpha)
    return sft_trainer_class()(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft
    )


def _labkit(dataset, config: SFTRunConfig, steps: int):
    trainer = build_trainer(config, load_model("smollm2-135m"), dataset, progress=False)
    trainer.args.max_steps, trainer.args.save_strategy = steps, "no"
    return trainer


def run(steps: int = 12) -> dict:
    config = SFTRunConfig(
        data="data/trajectories/trial-train", profile="cpu", out="/tmp/labkit-bench-sft", report_to="none"
    )
    tokenizer = load_tokenizer()
    data = training_data(config, tokenizer)
    dataset = data.dataset.select(range(steps * config.batch_size))  # every row once, in both arms
    arms = []
    makers = (
        ("plain TRL SFTTrainer (baseline)", lambda: _plain_trl(dataset, tokenizer, config, steps)),
        ("labkit sft", lambda: _labkit(dataset, config, steps)),
        ("labkit sft --full", lambda: _labkit(dataset, replace(config, full=True), steps)),
    )
    for name, make in makers:
        trainer = make()
        tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"][: steps * config.batch_size])
        start = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - start
        arms.append(
            {
                "arm": name,
                "seconds": seconds,
                "tokens": tokens,
                "tokens_per_s": tokens / seconds,
                "loss": result.training_loss,
            }
        )
    for arm in arms:
        arm["ratio"] = arm["tokens_per_s"] / arms[0]["tokens_per_s"]
    return {
        "rows": len(dataset),
        "steps": steps,
        "batch_size": config.batch_size,
        "max_length": config.max_length,
        "arms": arms,
    }


def report(results: dict) -> str:
    lines = [
        f"## SFT throughput: SmolLM2-135M, LoRA r=16, {results['steps']} steps x batch "
        f"{results['batch_size']} of trial trajectories (max_length {results['max_length']})",
        "",
        "| arm | seconds | training tokens | tokens/s | x plain TRL | mean loss |",
        "|---|---|---|---|---|---|",
        *[
            f"| {a['arm']} | {a['seconds']:.1f} | {a['tokens']} | "
            f"{a['tokens_per_s']:.1f} | {a['ratio']:.2f} | {a['loss']:.3f} |"
            for a in results["arms"]
        ],
        "",
        "Tokens are unpadded; every arm sees the same rows. The "
        "full arm trains every weight (LoRA's learning rate / 10).",
        "command: python -m bench sft",
    ]
    return "\n".join(lines)
