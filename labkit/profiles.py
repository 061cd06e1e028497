"""Named run sizes. Every notebook and CLI stage reads its size from one profile.

The profile comes from ``--profile NAME``, else the ``LABKIT_PROFILE`` variable,
else what ``labkit doctor`` recommends for this machine.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    model: str
    description: str
    n_tasks: int  # tasks a lesson or demo samples per split
    n_episodes: int  # scripted episodes a lesson or demo runs
    max_new_tokens: int  # model tokens per turn when a model acts
    max_turns: int  # turns per episode when a model acts


PROFILES = {
    "tiny": Profile("tiny", "tiny", "random-init tiny Llama; every code path in seconds (tests, CI)", 4, 8, 16, 3),
    "cpu": Profile("cpu", "smollm2-135m", "embedded SmolLM2-135M-Instruct on a laptop CPU", 24, 100, 96, 16),
    "gpu": Profile("gpu", "Qwen/Qwen2.5-0.5B-Instruct", "one CUDA GPU with unsloth and vLLM", 64, 400, 192, 20),
    "multi-gpu": Profile(
        "multi-gpu", "Qwen/Qwen2.5-1.5B-Instruct", "accelerate launch over many GPUs", 128, 1000, 192, 20
    ),
}


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
