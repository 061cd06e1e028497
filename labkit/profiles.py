"""Named run sizes. Every notebook and CLI stage reads its size from one profile.

A profile holds every size of a run at it together: the notebooks', evaluation's, SFT's, GRPO's, the ablation's
and the demo's. A stage's config leaves a size field ``None`` to take its profile's.

The profile comes from ``--profile NAME``, else the ``LABKIT_PROFILE`` variable,
else what ``labkit doctor`` recommends for this machine.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

SHIPPED_INIT = "data/adapters/sft-trial"  # the cpu profile's GRPO starts from the shipped SFT-trial adapter


@dataclass(frozen=True)
class NotebookSize:
    n_tasks: int  # tasks a lesson samples per split
    eval_tasks: int  # tasks per split a lesson evaluation plays (notebooks 03 and 05)
    rl_steps: int  # notebook 04's short GRPO run
    rl_prompts_per_step: int | None = None  # None: the rl size's


@dataclass(frozen=True)
class EvalSize:
    """`labkit eval`'s budgets (a model that never answers costs every turn)."""

    max_turns: int
    max_new_tokens: int  # model tokens per turn; the notebooks' cost estimates use it too


@dataclass(frozen=True)
class SFTSize:
    """How much training a profile does; measured on 2 cores for the cpu profile (see the README)."""

    token_budget: int | None  # training tokens per epoch; None: every row that fits
    max_length: int
    epochs: float
    batch_size: int
    learning_rate: float
    save_steps: int


@dataclass(frozen=True)
class RLSize:
    init: str  # the policy GRPO starts from
    steps: int
    prompts_per_step: int  # distinct tasks per step
    num_generations: int  # episodes per task: the group GRPO compares
    max_new_tokens: int  # per turn
    max_turns: int
    max_length: int  # tokens in a whole episode
    learning_rate: float
    beta: float  # KL to the init policy
    temperature: float
    save_steps: int


@dataclass(frozen=True)
class AblationSize:
    n: int  # tasks per seed per split
    seeds: int
    max_turns: int


@dataclass(frozen=True)
class DemoSize:
    train_tasks: int  # tasks the teachers solve and GRPO plays
    n: int  # evaluation tasks per split
    seeds: int
    rl_steps: int
    token_budget: int | None  # SFT tokens per arm; None: the sft size's


@dataclass(frozen=True)
class Profile:
    name: str
    model: str
    description: str
    notebook: NotebookSize
    # Two turn budgets: `labkit eval` on its own allows the eval size's turns (cpu: 16), while the ablation and
    # the notebooks evaluate at the ablation size's (cpu: 8), the budget GRPO trains at (rl.max_turns), so no
    # arm is judged on turns it never had in training.
    eval: EvalSize
    sft: SFTSize
    rl: RLSize
    ablation: AblationSize
    demo: DemoSize


# rl at cpu: the evaluation's budgets (8 turns of up to 96 tokens), so no turn or episode is cut short that
# evaluation would let finish (a tool call cut at 64 tokens is unreadable JSON). 16 episodes a step (four
# tasks x 4) and 6 steps fit ~30 minutes on 2 cores. Sampling at 0.7 keeps the 135M model's turns mostly
# readable while still varying them within a group.
# demo at cpu: 50k tokens is a point of the full learning curve, so the two can be set side by side; 50 tasks
# a split cost little more than 8 (the engine plays them together). Measured on 2 cores with vLLM:
# docs/instructor.md.
PROFILES = {
    "tiny": Profile(
        name="tiny",
        model="tiny",
        description="random-init tiny Llama; every code path in seconds (tests, CI)",
        notebook=NotebookSize(n_tasks=4, eval_tasks=2, rl_steps=2),
        eval=EvalSize(max_turns=3, max_new_tokens=16),
        sft=SFTSize(token_budget=4_000, max_length=512, epochs=1, batch_size=2, learning_rate=1e-3, save_steps=2),
        rl=RLSize(
            init="tiny",
            steps=2,
            prompts_per_step=2,
            num_generations=2,
            max_new_tokens=16,
            max_turns=3,
            max_length=1024,
            learning_rate=1e-4,
            beta=0.02,
            temperature=1.0,
            save_steps=1,
        ),
        ablation=AblationSize(n=2, seeds=1, max_turns=3),
        demo=DemoSize(train_tasks=40, n=2, seeds=1, rl_steps=1, token_budget=None),
    ),
    "cpu": Profile(
        name="cpu",
        model="smollm2-135m",
        description="embedded SmolLM2-135M-Instruct on a laptop CPU",
        # Notebook 04's GRPO: 4 steps of 2 tasks x 4 episodes, about 8 minutes on 2 cores.
        notebook=NotebookSize(n_tasks=24, eval_tasks=8, rl_steps=4, rl_prompts_per_step=2),
        eval=EvalSize(max_turns=16, max_new_tokens=96),
        sft=SFTSize(token_budget=50_000, max_length=2048, epochs=1, batch_size=2, learning_rate=5e-4, save_steps=10),
        rl=RLSize(
            init=SHIPPED_INIT,
            steps=6,
            prompts_per_step=4,
            num_generations=4,
            max_new_tokens=96,
            max_turns=8,
            max_length=2048,
            learning_rate=1e-4,
            beta=0.02,
            temperature=0.7,
            save_steps=1,
        ),
        ablation=AblationSize(n=16, seeds=3, max_turns=8),
        demo=DemoSize(train_tasks=400, n=50, seeds=1, rl_steps=1, token_budget=50000),
    ),
    "gpu": Profile(
        name="gpu",
        model="Qwen/Qwen2.5-0.5B-Instruct",
        description="one CUDA GPU with unsloth and vLLM",
        notebook=NotebookSize(n_tasks=64, eval_tasks=32, rl_steps=40),
        eval=EvalSize(max_turns=20, max_new_tokens=192),
        sft=SFTSize(token_budget=None, max_length=2048, epochs=2, batch_size=8, learning_rate=2e-4, save_steps=50),
        rl=RLSize(
            init="Qwen/Qwen2.5-0.5B-Instruct",
            steps=200,
            prompts_per_step=8,
            num_generations=8,
            max_new_tokens=192,
            max_turns=12,
            max_length=4096,
            learning_rate=1e-5,
            beta=0.02,
            temperature=1.0,
            save_steps=25,
        ),
        ablation=AblationSize(n=100, seeds=3, max_turns=12),
        demo=DemoSize(train_tasks=400, n=32, seeds=1, rl_steps=20, token_budget=None),
    ),
    "multi-gpu": Profile(
        name="multi-gpu",
        model="Qwen/Qwen2.5-1.5B-Instruct",
        description="accelerate launch over many GPUs",
        notebook=NotebookSize(n_tasks=128, eval_tasks=64, rl_steps=40),
        eval=EvalSize(max_turns=20, max_new_tokens=192),
        sft=SFTSize(token_budget=None, max_length=2048, epochs=2, batch_size=8, learning_rate=2e-4, save_steps=100),
        rl=RLSize(
            init="Qwen/Qwen2.5-1.5B-Instruct",
            steps=400,
            prompts_per_step=16,
            num_generations=8,
            max_new_tokens=192,
            max_turns=12,
            max_length=4096,
            learning_rate=1e-5,
            beta=0.02,
            temperature=1.0,
            save_steps=25,
        ),
        ablation=AblationSize(n=200, seeds=5, max_turns=12),
        demo=DemoSize(train_tasks=400, n=64, seeds=1, rl_steps=50, token_budget=None),
    ),
}


PROFILE_OPTION = {"choices": tuple(PROFILES)}  # the `--profile` of every stage (labkit.cli)


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None


def profile_from_argv(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--profile" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--profile="):
            return arg.split("=", 1)[1]
    return None


def resolve_profile(name: str | None = None, argv: list[str] | None = None) -> Profile:
    """The profile to run at: explicit name, then ``--profile``, then ``LABKIT_PROFILE``, then the doctor's pick."""
    name = name or profile_from_argv(sys.argv[1:] if argv is None else argv) or os.environ.get("LABKIT_PROFILE")
    if not name:
        from labkit.doctor import machine_report

        name = machine_report().recommended_profile
    return get_profile(name)
