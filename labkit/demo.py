"""The whole course, headless: data -> SFT -> GRPO -> evaluation -> report.

    labkit demo --profile cpu        (what `make demo` runs)

Notebooks 01-05 in one command, sized to finish in well under an hour on two
CPU cores. It regenerates the training tasks and both teacher datasets (at the
cpu profile they must equal the shipped ``data/`` byte for byte), trains
SFT-golden and SFT-trial at a matched token budget, trains GRPO on top of
SFT-trial, evaluates the base model and the three trained policies on seen,
evolved and unseen tools, and writes ``reports/demo/ablation.md`` with its
plots. It is :mod:`labkit.ablation` at a smaller size, so its table reads like
the full one in ``reports/ablation.md``. Every stage resumes: run it again after
an interruption and it picks up where it stopped.
"""

from __future__ import annotations

import filecmp
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from labkit.ablation import DATASETS, TRAIN_TASKS, AblationConfig, run_ablation
from labkit.profiles import get_profile

ARMS = ("base", "sft-golden", "sft-trial", "sft-trial-grpo")
TEACHERS = {"sft-golden": "golden", "sft-trial": "trial"}
SHIPPED = "data"
SHIPPED_TRAIN_TASKS = 400  # `make data`


@dataclass(frozen=True)
class DemoSize:
    train_tasks: int  # tasks the teachers solve and GRPO plays
    n: int  # evaluation tasks per split
    seeds: int
    rl_steps: int
    token_budget: int | None  # SFT tokens per arm; None: the sft profile's


SIZES = {
    "tiny": DemoSize(train_tasks=40, n=2, seeds=1, rl_steps=1, token_budget=None),
    # Measured on 2 cores: the evaluation of the base model (every episode runs out of turns)
    # and SFT dominate; 30k tokens per arm keeps both SFT arms near 5 minutes.
    "cpu": DemoSize(train_tasks=400, n=8, seeds=1, rl_steps=2, token_budget=30000),
    "gpu": DemoSize(train_tasks=400, n=32, seeds=1, rl_steps=20, token_budget=None),
    "multi-gpu": DemoSize(train_tasks=400, n=64, seeds=1, rl_steps=50, token_budget=None),
}


@dataclass
class DemoConfig:
    profile: str = "cpu"
    out: str = "runs/demo"
    report: str = "reports/demo/ablation.md"
    micro_batch: int = 4  # GRPO episodes per forward/backward pass; lower it if memory runs out
    engine: str = "auto"  # the rollout engine for evaluation and GRPO (labkit.engine)

    @property
    def size(self) -> DemoSize:
        return SIZES[get_profile(self.profile).name]

    @property
    def data(self) -> str:
        return f"{self.out}/data"

    def ablation(self) -> AblationConfig:
        size = self.size
        return AblationConfig(
            profile=self.profile, out=self.out, report=self.report, data=self.data, n=size.n, seeds=size.seeds,
            token_budget=size.token_budget, rl_steps=size.rl_steps, arms=ARMS, micro_batch=self.micro_batch,
            engine=self.engine,
        )


def make_data(config: DemoConfig, progress: bool = True) -> dict[str, bool]:
    """Training tasks and both teacher datasets under ``config.data``.

    Returns, for each, whether it equals the shipped one byte for byte (nothing when the sizes differ, as at the tiny profile).
    """
    from labkit.models import load_tokenizer
    from labkit.tasks import generate_tasks, save_tasks
    from labkit.teach import TeachConfig, teach

    tasks = Path(config.data) / TRAIN_TASKS
    if not tasks.exists():
        save_tasks(generate_tasks("train", config.size.train_tasks, seed=0), tasks)
    tokenizer = load_tokenizer(get_profile(config.profile).model)
    for arm, teacher in TEACHERS.items():
        out = Path(config.data) / DATASETS[arm]
        if not out.exists():  # teach() writes the folder atomically, so an existing one is complete
            teach(TeachConfig(teacher=teacher, tasks_file=str(tasks), out=str(out)), progress=progress, tokenizer=tokenizer)
    if config.size.train_tasks != SHIPPED_TRAIN_TASKS:
        return {}
    pairs = {TRAIN_TASKS: TRAIN_TASKS, **{DATASETS[arm]: f"{DATASETS[arm]}/data.parquet" for arm in TEACHERS}}
    # Run from outside the lab's folder, the shipped files are not at hand: nothing to compare with.
    return {name: filecmp.cmp(Path(config.data) / file, Path(SHIPPED) / file, shallow=False) for name, file in pairs.items() if (Path(SHIPPED) / file).is_file()}


def check_profile(config: DemoConfig) -> None:
    """Refuse a folder that holds a demo at another profile: its finished stages would be read back as this one's."""
    record = Path(config.out, "demo.json")
    if record.is_file():
        earlier = json.loads(record.read_text(encoding="utf-8"))["config"]["profile"]
        if earlier != config.profile:
            raise ValueError(f"{config.out} holds a demo at the {earlier} profile; give this one another --out, or delete {config.out}")
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"config": asdict(config)}, indent=2), encoding="utf-8")


def run_demo(config: DemoConfig, progress: bool = True) -> dict:
    """Data, then the ablation at the demo's size; returns the ablation's result plus ``seconds`` per stage."""
    check_profile(config)
    start = time.perf_counter()
    if progress:
        tqdm.write(f"[demo] data: {config.size.train_tasks} training tasks and two teacher datasets in {config.data}")
    same = make_data(config, progress)
    seconds = {"data": time.perf_counter() - start}
    result = run_ablation(config.ablation(), progress=progress)
    seconds |= result["seconds"] | {"total": time.perf_counter() - start}
    record = {"config": asdict(config), "size": asdict(config.size), "same_as_shipped": same, "seconds": seconds}
    Path(config.out, "demo.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return result | {"same_as_shipped": same, "seconds": seconds}
