"""The ablation: does learning to try tools beat imitating golden calls, and does RL add to it?

    labkit ablation --profile cpu

From the same base and the same training tasks, it trains SFT-golden and
SFT-trial at a matched token budget (:mod:`labkit.sft`), then GRPO in the live
environment twice (:mod:`labkit.rl`): on top of SFT-trial, and from the base
model alone. It evaluates all five arms on the seen, evolved and unseen splits
with the same tasks and seeds (:mod:`labkit.evaluate`), and writes
``reports/ablation.md`` with its plots. Every stage resumes: a finished run or
evaluation is read back, an interrupted one continues where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from labkit.data import load_dataset_dir, read_rows, token_lengths
from labkit.evaluate import EvalConfig, bootstrap_metrics, evaluate, format_metric
from labkit.profiles import get_profile
from labkit.rl import RLRunConfig, format_number, stack_on_init, train_rl
from labkit.sft import SFTRunConfig, ship_adapter, train_sft

ARMS = ("base", "sft-golden", "sft-trial", "sft-trial-grpo", "grpo-only")
SPLITS = ("seen", "evolved", "unseen")
DATASETS = {"sft-golden": "trajectories/golden-train", "sft-trial": "trajectories/trial-train"}  # under AblationConfig.data
TRAIN_TASKS = "tasks/train.jsonl"  # the tasks GRPO plays, under AblationConfig.data
RL_ARMS = {"sft-trial-grpo": "sft-trial", "grpo-only": None}  # arm -> the SFT arm it starts from (None: the base model)


@dataclass(frozen=True)
class AblationSize:
    n: int  # tasks per seed per split
    seeds: int
    max_turns: int


SIZES = {
    "tiny": AblationSize(n=2, seeds=1, max_turns=3),
    "cpu": AblationSize(n=16, seeds=3, max_turns=8),
    "gpu": AblationSize(n=100, seeds=3, max_turns=12),
    "multi-gpu": AblationSize(n=200, seeds=5, max_turns=12),
}


@dataclass
class AblationConfig:
    profile: str = "cpu"
    out: str = "runs/ablation"
    report: str = "reports/ablation.md"
    data: str = "data"  # the tasks and teacher datasets (`make data` writes them here)
    n: int | None = None  # None: the profile's
    seeds: int | None = None
    max_turns: int | None = None
    token_budget: int | None = None  # None: the sft profile's, capped by the smaller dataset
    rl_steps: int | None = None  # None: the rl profile's
    ship: str | None = None  # copy the trained adapters here (``data/adapters`` is what the notebooks load)
    micro_batch: int = 4  # GRPO episodes per forward/backward pass; lower it if memory runs out
    arms: tuple[str, ...] = ARMS  # the arms to evaluate and report; only the SFT runs they need are trained
    engine: str = "auto"  # the rollout engine for evaluation and GRPO (labkit.engine)

    def __post_init__(self) -> None:
        unknown = [arm for arm in self.arms if arm not in ARMS]
        if unknown or not self.arms:
            raise ValueError(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
        self.arms = tuple(arm for arm in ARMS if arm in self.arms)
        size = SIZES[get_profile(self.profile).name]
        self.n = self.n or size.n
        self.seeds = self.seeds or size.seeds
        self.max_turns = self.max_turns or size.max_turns

    @property
    def datasets(self) -> dict[str, str]:
        return {arm: f"{self.data}/{path}" for arm, path in DATASETS.items()}

    @property
    def sft_arms(self) -> tuple[str, ...]:
        """The SFT runs to train: the chosen SFT arms and those a chosen GRPO arm starts from."""
        needed = set(self.arms) | {RL_ARMS[arm] for arm in self.arms if arm in RL_ARMS}
        return tuple(arm for arm in DATASETS if arm in needed)

    def command(self) -> str:
        options = {
            "--data": self.data != "data" and self.data,
            "--token-budget": self.token_budget,
            "--rl-steps": self.rl_steps,
            "--micro-batch": self.micro_batch != 4 and self.micro_batch,
            "--engine": self.engine != "auto" and self.engine,
            "--report": self.report != "reports/ablation.md" and self.report,
        }
        extra = "".join(f" {flag} {value}" for flag, value in options.items() if value)
        arms = "" if self.arms == ARMS else f" --arms {','.join(self.arms)}"
        return f"labkit ablation --profile {self.profile} --n {self.n} --seeds {self.seeds}{extra} --out {self.out}{arms}"


def matched_budget(config: AblationConfig, tokenizer) -> int:
    """One token budget for every arm: the profile's, or less when a dataset cannot fill it."""

    wanted = SFTRunConfig(profile=config.profile, token_budget=config.token_budget)
    totals = []
    for path in config.datasets.values():
        lengths = token_lengths(load_dataset_dir(path), tokenizer)
        totals.append(sum(n for n in lengths if n <= wanted.max_length))
    return min([*totals, wanted.token_budget] if wanted.token_budget else totals)


def sft_config(config: AblationConfig, arm: str, budget: int) -> SFTRunConfig:
    return SFTRunConfig(data=config.datasets[arm], profile=config.profile, out=f"{config.out}/{arm}", token_budget=budget)


def rl_config(config: AblationConfig, arm: str) -> RLRunConfig:
    start = RL_ARMS[arm]
    init = f"{config.out}/{start}" if start else get_profile(config.profile).model
    return RLRunConfig(init=init, profile=config.profile, out=f"{config.out}/{arm}", tasks=f"{config.data}/{TRAIN_TASKS}", steps=config.rl_steps,
                        micro_batch=config.micro_batch, engine=config.engine)


def eval_config(config: AblationConfig, arm: str, split: str) -> EvalConfig:
    policy = get_profile(config.profile).model if arm == "base" else f"{config.out}/{arm}"
    return EvalConfig(
        policy=policy, split=split, n=config.n, seeds=config.seeds, profile=config.profile, max_turns=config.max_turns, out=f"{config.out}/eval/{arm}-{split}",
        engine=config.engine,
    )


def run_ablation(config: AblationConfig, progress: bool = True) -> dict:
    """Train, evaluate and report.

    Returns ``{"runs": {arm: SFT card}, "rl_runs": {arm: GRPO card}, "metrics": {(arm, split): metrics},
    "pooled": {arm: metrics on evolved + unseen}, "seconds": {stage: s}}``;
    a stage read back from a finished run takes next to no time.
    """
    from labkit.models import load_tokenizer

    tokenizer = load_tokenizer(get_profile(config.profile).model)
    budget = matched_budget(config, tokenizer)
    seconds, clock = {}, time.perf_counter()
    runs = {}
    for arm in config.sft_arms:
        if progress:
            tqdm.write(f"[ablation] training {arm} on {config.datasets[arm]} ({budget} tokens)")
        runs[arm] = train_sft(sft_config(config, arm, budget), progress=progress)
        if config.ship:
            ship_adapter(f"{config.out}/{arm}", f"{config.ship}/{arm}")
    seconds["sft"], clock = time.perf_counter() - clock, time.perf_counter()
    rl_runs = {}
    for arm in (a for a in RL_ARMS if a in config.arms):
        if progress:
            tqdm.write(f"[ablation] GRPO {arm} from {rl_config(config, arm).init}")
        rl_runs[arm] = train_rl(rl_config(config, arm), progress=progress)
        if config.ship:
            shipped = ship_adapter(f"{config.out}/{arm}", f"{config.ship}/{arm}")
            if RL_ARMS[arm]:
                stack_on_init(shipped, f"{config.ship}/{RL_ARMS[arm]}")
    seconds["grpo"], clock = time.perf_counter() - clock, time.perf_counter()
    metrics = {}
    for arm in config.arms:
        for split in SPLITS:
            if progress:
                tqdm.write(f"[ablation] evaluating {arm} on {split}")
            metrics[(arm, split)] = evaluate(eval_config(config, arm, split), progress=progress)
    seconds["evaluation"] = time.perf_counter() - clock
    pooled = pooled_metrics(config)
    result = {"runs": runs, "rl_runs": rl_runs, "metrics": metrics, "pooled": pooled, "budget": budget, "seconds": seconds}
    write_ablation_report(config, result)
    return result


# ----------------------------------------------------------------------------- the comparison


def arm_rows(config: AblationConfig, arm: str, splits: tuple[str, ...]) -> list[dict]:
    return [row for split in splits for row in read_rows(Path(eval_config(config, arm, split).out) / "episodes.jsonl")]


def success_gap(rows_a: list[dict], rows_b: list[dict], resamples: int = 2000, seed: int = 0) -> dict:
    """Success of A minus success of B, with a 95% bootstrap interval (each arm resampled on its own)."""
    a = np.array([float(r["success"]) for r in rows_a])
    b = np.array([float(r["success"]) for r in rows_b])
    if not a.size or not b.size:
        return {"gap": float("nan"), "ci95": [None, None]}
    rng = np.random.default_rng(seed)
    gaps = rng.choice(a, (resamples, a.size)).mean(1) - rng.choice(b, (resamples, b.size)).mean(1)
    return {"gap": float(a.mean() - b.mean()), "ci95": [float(np.percentile(gaps, 2.5)), float(np.percentile(gaps, 97.5))]}


def success_table(config: AblationConfig, metrics: dict, pooled: dict) -> list[str]:
    """Markdown rows: each arm's success per split and on evolved + unseen pooled."""
    return [
        "| arm | " + " | ".join(SPLITS) + " | evolved + unseen |",
        "|:--|" + "--:|" * (len(SPLITS) + 1),
        *[
            f"| {arm} | " + " | ".join(format_metric(metrics[(arm, s)], "success") for s in SPLITS) + f" | {format_metric(pooled[arm], 'success')} |"
            for arm in config.arms
        ],
    ]


def pooled_metrics(config: AblationConfig, splits: tuple[str, ...] = ("evolved", "unseen")) -> dict:
    return {arm: bootstrap_metrics(arm_rows(config, arm, splits)) for arm in config.arms}


def write_ablation_report(config: AblationConfig, result: dict) -> Path:
    from labkit import plots
    from labkit.evaluate import FAILURES
    from labkit.lessons import robustness_by_policy

    report = Path(config.report)
    (report.parent / "figures").mkdir(parents=True, exist_ok=True)
    # Named after the report, so that a report of a few arms beside the full one keeps its own plots.
    figure = {name: f"figures/{report.stem}_{name}.png" for name in ("success", "robustness", "failures", "loss", "grpo")}
    metrics = result["metrics"]
    charts = {
        "success": plots.success_by_split({(arm, split): m for (arm, split), m in metrics.items()}),
        "robustness": plots.robustness_curve(robustness_by_policy(metrics)),
        "failures": plots.failure_taxonomy(
            {arm: {f: sum(metrics[(arm, s)]["failures"].get(f, 0) for s in SPLITS) for f in FAILURES} for arm in config.arms}, FAILURES
        ),
    }
    if result["runs"]:
        charts["loss"] = plots.loss_curve({arm: card["loss_curve"] for arm, card in result["runs"].items()})
    if result["rl_runs"]:
        charts["grpo"] = plots.rl_curves({arm: card["history"] for arm, card in result["rl_runs"].items()})
    for name, chart in charts.items():
        chart.savefig(report.parent / figure[name], dpi=110)

    hard = ("evolved", "unseen")
    pooled = result["pooled"]
    gaps = {
        (a, b): success_gap(arm_rows(config, a, hard), arm_rows(config, b, hard))
        for a, b in (("sft-trial", "sft-golden"), ("sft-trial-grpo", "sft-trial"), ("grpo-only", "base"))
        if a in config.arms and b in config.arms
    }
    lines = [
        "# Ablation: trial-and-execution vs golden trajectories, and what GRPO adds",
        "",
        f"Reproduce with `{config.command()}` (every stage resumes from `{config.out}`).",
        "",
        (f"The SFT arms ({', '.join(result['runs'])}) start from `{get_profile(config.profile).model}` and train on the same training tasks at a matched budget of "
         f"{result['budget']} template tokens. " if result["runs"] else "")
        + "".join(f"{arm} trains with GRPO in the live environment on the same training tasks, from {card['config']['init']}. " for arm, card in result["rl_runs"].items())
        + f"Each cell is success over {config.n} tasks x {config.seeds} seed(s), "
        f"at most {config.max_turns} turns, with a 95% bootstrap interval.",
        "",
        *success_table(config, metrics, pooled),
        "",
        *(["Differences in success on evolved + unseen, with 95% bootstrap intervals:", "", *[f"- **{a} minus {b}: {_gap_text(gap)}**" for (a, b), gap in gaps.items()], ""] if gaps else []),
        f"![success by split]({figure['success']})",
        "",
        "## Evolved tools, by level",
        "",
        "| arm | " + " | ".join(f"level {lv}" for lv in range(1, 5)) + " |",
        "|:--|" + "--:|" * 4,
        *[f"| {arm} | " + " | ".join(_level_cell(metrics[(arm, 'evolved')], lv) for lv in range(1, 5)) + " |" for arm in config.arms],
        "",
        f"![robustness]({figure['robustness']})",
        "",
        "## How they behave",
        "",
        "| arm | valid-call rate | trials per episode | trial-then-use | error recovery | calls per episode |",
        "|:--|--:|--:|--:|--:|--:|",
        *[
            f"| {arm} | "
            + " | ".join(format_metric(pooled[arm], m) for m in ("valid_call_rate", "trials_per_episode", "trial_then_use_rate", "error_recovery_rate", "calls_per_episode"))
            + " |"
            for arm in config.arms
        ],
        "",
        "(evolved + unseen pooled)",
        "",
        f"![failures]({figure['failures']})",
        "",
        "## Training",
        "",
    ]
    if result["runs"]:
        lines += [
            "| arm | rows | tokens | steps | time | tokens/s | final loss |",
            "|:--|--:|--:|--:|--:|--:|--:|",
            *[
                f"| {arm} | {c['data']['rows']} | {c['data']['tokens']} | {c['steps']} | {c['seconds']:.0f} s | {c['tokens_per_second']} | {c['final_loss']:.3f} |"
                for arm, c in result["runs"].items()
            ],
            "",
            f"![loss]({figure['loss']})",
            "",
        ]
    if result["rl_runs"]:
        lines += [
            "| GRPO arm | from | steps x episodes | time | reward, first 5 steps -> last 5 | success in training | trials per episode | KL (last 5) | zero-advantage groups (last 5) |",
            "|:--|:--|--:|--:|--:|--:|--:|--:|--:|",
            *[
                f"| {arm} | {c['config']['init']} | {c['steps']} x {c['episodes_per_step']} | {c['seconds']:.0f} s | "
                f"{format_number(c['first_steps']['reward'])} -> {format_number(c['last_steps']['reward'])} | "
                f"{format_number(c['first_steps']['episode/success'])} -> {format_number(c['last_steps']['episode/success'])} | "
                f"{format_number(c['first_steps']['episode/trials'], 2)} -> {format_number(c['last_steps']['episode/trials'], 2)} | "
                f"{format_number(c['last_steps']['kl'], 4)} | {format_number(c['last_steps']['frac_reward_zero_std'], 2)} |"
                for arm, c in result["rl_runs"].items()
            ],
            "",
            f"![grpo]({figure['grpo']})",
            "",
        ]
    report.write_text("\n".join(lines), encoding="utf-8")
    (Path(config.out) / "ablation.json").write_text(
        json.dumps({f"{arm}/{split}": {k: m[k] for k in ("success", "success_ci95", "n")} for (arm, split), m in metrics.items()} | {f"gap_evolved_unseen/{a}-minus-{b}": gap for (a, b), gap in gaps.items()}, indent=2)
    )
    return report


def _level_cell(metrics: dict, level: int) -> str:
    cell = metrics["success_by_level"].get(str(level))
    if not cell:
        return "n/a"
    return f"{cell['success']:.2f} [{cell['ci95'][0]:.2f}, {cell['ci95'][1]:.2f}] (n={cell['n']})"


def _gap_text(gap: dict) -> str:
    low, high = gap["ci95"]
    return f"{gap['gap']:+.3f}" + (f" [{low:+.3f}, {high:+.3f}]" if low is not None else "")
