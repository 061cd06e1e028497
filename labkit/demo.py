"""The whole course, headless: data -> SFT -> GRPO -> evaluation -> report.

    labkit demo --profile cpu        (what `make demo` runs)

Notebooks 01-05 in one command, sized to finish in well under an hour on two
CPU cores. It regenerates the training tasks and both teacher datasets (at the
cpu profile they must equal the shipped ``data/`` byte for byte), trains
SFT-golden and SFT-trial at a matched token budget, trains GRPO on top of
SFT-trial, evaluates the base model and the three trained policies on seen,
evolved and unseen tools, and writes ``reports/demo/ablation.md`` with its
plots. It is :mod:`labkit.ablation` at a smaller size, so its table reads like
the full one in ``reports/ablation.md``; the report ends by setting its figures
beside the full ablation's (``reports/ablation.json``) and the full learning
curve's at the same budget (``reports/ablation-curve.json``). Every stage
resumes: run it again after an interruption and it picks up where it stopped.
"""

from __future__ import annotations

import filecmp
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from labkit.ablation import DATASETS, MICRO_BATCH_OPTION, POOLED, TRAIN_TASKS, AblationConfig, run_ablation
from labkit.engine import ENGINE_OPTION
from labkit.profiles import PROFILE_OPTION, DemoSize, get_profile
from labkit.runs import normal_path
from labkit.templates import render

# The course's arms (notebooks 03-05); the full ablation adds SFT-recover. Every evaluation plays 8 turns
# whatever the number of tasks, so each arm costs about 6 minutes on 2 cores: four arms fit in 45 minutes.
ARMS = ("base", "sft-golden", "sft-trial", "sft-trial-grpo")
TEACHERS = {"sft-golden": "golden", "sft-trial": "trial"}
SHIPPED = "data"
# The full ablation and its learning curve, as `make ablation` ships them.
FULL = ("reports/ablation.json", "reports/ablation-curve.json")
SHIPPED_TRAIN_TASKS = 400  # `make data`


@dataclass
class DemoConfig:
    profile: str = field(default="cpu", metadata=PROFILE_OPTION)
    out: str = field(default="runs/demo", metadata={"parse": normal_path})
    report: str = field(default="reports/demo/ablation.md", metadata={"parse": normal_path})
    micro_batch: int = field(default=4, metadata=MICRO_BATCH_OPTION)
    engine: str = field(default="auto", metadata=ENGINE_OPTION)  # for evaluation and GRPO

    @property
    def size(self) -> DemoSize:
        return get_profile(self.profile).demo

    @property
    def data(self) -> str:
        return f"{self.out}/data"

    def ablation(self) -> AblationConfig:
        size = self.size
        return AblationConfig(
            profile=self.profile,
            out=self.out,
            report=self.report,
            data=self.data,
            n=size.n,
            seeds=size.seeds,
            token_budget=size.token_budget,
            rl_steps=size.rl_steps,
            arms=ARMS,
            micro_batch=self.micro_batch,
            engine=self.engine,
        )


def make_data(config: DemoConfig, progress: bool = True) -> dict[str, bool]:
    """Training tasks and the teacher datasets under ``config.data``.

    Returns, for each, whether it equals the shipped one byte for
    byte (nothing when the sizes differ, as at the tiny profile).
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
            teach(
                TeachConfig(teacher=teacher, tasks_file=str(tasks), out=str(out)),
                progress=progress,
                tokenizer=tokenizer,
            )
    if config.size.train_tasks != SHIPPED_TRAIN_TASKS:
        return {}
    pairs = {TRAIN_TASKS: TRAIN_TASKS, **{DATASETS[arm]: f"{DATASETS[arm]}/data.parquet" for arm in TEACHERS}}
    # Run from outside the lab's folder, the shipped files are not at hand: nothing to compare with.
    return {
        name: filecmp.cmp(Path(config.data) / file, Path(SHIPPED) / file, shallow=False)
        for name, file in pairs.items()
        if (Path(SHIPPED) / file).is_file()
    }


def check_profile(config: DemoConfig) -> None:
    """Refuse a folder that holds a demo at another profile: its finished stages would be read back as this one's."""
    record = Path(config.out, "demo.json")
    if record.is_file():
        earlier = json.loads(record.read_text(encoding="utf-8"))["config"]["profile"]
        if earlier != config.profile:
            raise ValueError(
                f"{config.out} holds a demo at the {earlier} profile; "
                f"give this one another --out, or delete {config.out}"
            )
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"config": asdict(config)}, indent=2), encoding="utf-8")


def run_demo(config: DemoConfig, progress: bool = True) -> dict:
    """Data, then the ablation at the demo's size; returns the ablation's result plus ``seconds`` per stage."""
    check_profile(config)
    start = time.perf_counter()
    if progress:
        tqdm.write(
            f"[demo] data: {config.size.train_tasks} training tasks "
            f"and {len(TEACHERS)} teacher datasets in {config.data}"
        )
    same = make_data(config, progress)
    seconds = {"data": time.perf_counter() - start}
    result = run_ablation(config.ablation(), progress=progress)
    with Path(config.report).open("a", encoding="utf-8") as report:
        report.write("\n".join(["", *relation_to_full(result, *(_read_json(path) for path in FULL))]))
    seconds |= result["seconds"] | {"total": time.perf_counter() - start}
    record = {"config": asdict(config), "size": asdict(config.size), "same_as_shipped": same, "seconds": seconds}
    Path(config.out, "demo.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return result | {"same_as_shipped": same, "seconds": seconds}


def _read_json(path: str) -> dict | None:
    return json.loads(Path(path).read_text(encoding="utf-8")) if Path(path).is_file() else None


def ordering(success: dict[str, float]) -> str:
    """Arms from best to worst success, ties (to three decimals)
    as such: ``sft-golden > sft-trial = sft-trial-grpo > base``."""
    arms = sorted(success, key=lambda arm: -success[arm])
    return (
        arms[0]
        + "".join(
            f" {'=' if round(success[a], 3) == round(success[b], 3) else '>'} {b}" for a, b in zip(arms, arms[1:])
        )
        if arms
        else ""
    )


def relation_to_full(result: dict, full: dict | None, curve: dict | None) -> list[str]:
    """The demo report's last section: its success on evolved + unseen beside the full ablation's table, and beside
    the full learning curve at the demo's own SFT budget (the same training data, more evaluation tasks).

    As lines, the way :func:`run_demo` appends them to the report."""
    if full is None:
        return render("demo_relation.md.jinja", full=None, full_path=FULL[0]).split("\n")
    demo = {arm: m["success"] for arm, m in result["pooled"].items()}
    table = {arm: full["success"][f"{arm}/{POOLED}"]["success"] for arm in demo if f"{arm}/{POOLED}" in full["success"]}
    budget = min(result["budgets"].values(), default=0)
    # The curve's point for the demo's budget: its token count is what fit under that budget, so allow a little.
    points = (curve or {}).get("curves", {})
    at_budget = {
        arm: p["success"] for arm in demo for p in points.get(arm, []) if abs(p["tokens"] - budget) <= 0.05 * budget
    }
    columns = {
        f"this demo ({budget} tokens, {next(iter(result['pooled'].values()))['n']} episodes)": demo,
        f"full table ({min(full['budgets'].values())} tokens, "
        f"{full['n']} tasks x {full['seeds']} seed(s) a split)": table,
        **({f"full learning curve at {budget} tokens": at_budget} if at_budget else {}),
    }
    text = render(
        "demo_relation.md.jinja",
        full=full,
        curve=curve,
        demo=demo,
        table=table,
        at_budget=at_budget,
        budget=budget,
        columns=columns,
        ordering=ordering,
    )
    return text.split("\n")
