"""The ablation: does learning to try tools beat imitating golden calls, and does RL add to it?

    labkit ablation --profile cpu

From the same base and the same training tasks, it trains three SFT arms
(:mod:`labkit.sft`): SFT-golden imitates the documented calls, SFT-recover calls
as documented and fixes what fails from the error, SFT-trial probes each tool
first and then recovers too. Recover against trial separates "fix after
failing" from "try first". Then GRPO in the live environment twice
(:mod:`labkit.rl`): on top of SFT-trial, and from the base model alone. It
evaluates every arm on the seen, evolved and unseen splits with the same tasks
and seeds (:mod:`labkit.evaluate`), and writes ``reports/ablation.md`` with its
plots. Every stage resumes: a finished run or evaluation is read back, an
interrupted one continues where it stopped.

Budgets: ``budget="tokens"`` gives every SFT arm the same number of training
tokens (trial trajectories are longer, so that arm sees fewer tasks);
``budget="tasks"`` trains every arm on its own trajectories of every training
task for the same epochs. ``curve`` adds a learning curve: each SFT arm trained
at several token budgets and evaluated on evolved + unseen.

Longer than the lab's ~450 lines per module: the plan (arms, budgets, learning curve) and the report that reads
it back are one experiment; the paired statistics are in :mod:`labkit.gaps`, the report's prose in
templates/ablation_report.md.jinja.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from labkit.data import load_dataset_dir, token_lengths
from labkit.engine import ENGINE_OPTION
from labkit.evaluate import EvalConfig, bootstrap_metrics, evaluate, evaluation_rows, format_metric
from labkit.gaps import success_gap
from labkit.profiles import PROFILE_OPTION, get_profile
from labkit.rl import RLRunConfig, stack_on_init, train_rl
from labkit.runs import normal_path
from labkit.sft import SFTRunConfig, ship_adapter, train_sft
from labkit.templates import render

ARMS = ("base", "sft-golden", "sft-recover", "sft-trial", "sft-trial-grpo", "grpo-only")
SPLITS = ("seen", "evolved", "unseen")
HARD = ("evolved", "unseen")  # the splits the thesis is about: changed tools and tools never trained on
POOLED = "+".join(HARD)  # how reports/ablation.json names them pooled
DATASETS = {  # under AblationConfig.data
    "sft-golden": "trajectories/golden-train",
    "sft-recover": "trajectories/recover-train",
    "sft-trial": "trajectories/trial-train",
}
BUDGETS = ("tokens", "tasks")
# The differences the report puts intervals on: each claim of the lab, as (arm, minus arm).
GAPS = (
    ("sft-trial", "sft-golden"),
    ("sft-recover", "sft-golden"),
    ("sft-trial", "sft-recover"),
    ("sft-trial-grpo", "sft-trial"),
    ("grpo-only", "base"),
)
TRAIN_TASKS = "tasks/train.jsonl"  # the tasks GRPO plays, under AblationConfig.data
RL_ARMS = {"sft-trial-grpo": "sft-trial", "grpo-only": None}  # arm -> the SFT arm it starts from (None: the base model)
# What the lab's thesis claims, as checks on the measured gaps
# (on evolved + unseen): (better, worse, at least this much).
TARGET_GAPS = (("sft-trial", "sft-golden", 0.15), ("sft-trial-grpo", "sft-trial", 0.05))
TARGET_RECOVERY = 0.5  # SFT-trial's error-recovery rate on evolved + unseen
# `--micro-batch` of `labkit ablation` and `labkit demo` (labkit.cli)
MICRO_BATCH_OPTION = {"help": "GRPO episodes per forward/backward pass (default 4); lower it if memory runs out"}


def token_counts(text: str | None) -> tuple[int, ...]:
    """``"25000,50k"`` -> ``(25000, 50000)``: a learning curve's budgets as `--curve` takes them."""
    counts = []
    for item in (text or "").split(","):
        item = item.strip().lower()
        if item:
            try:
                counts.append(int(float(item[:-1]) * 1000) if item.endswith("k") else int(item))
            except ValueError:
                raise ValueError(
                    f"--curve takes token counts separated by commas (e.g. 25000,50k,100k), got {item!r}"
                ) from None
    return tuple(counts)


@dataclass
class AblationConfig:
    profile: str = field(default="cpu", metadata=PROFILE_OPTION)
    out: str = field(default="runs/ablation", metadata={"parse": normal_path})
    report: str = field(default="reports/ablation.md", metadata={"parse": normal_path})
    # The tasks and teacher datasets (`make data` writes them here).
    data: str = field(
        default="data", metadata={"help": "where the tasks and teacher datasets are (default: the shipped data/)"}
    )
    n: int | None = field(default=None, metadata={"help": "tasks per seed per split (default: the profile's)"})
    seeds: int | None = field(default=None, metadata={"help": "default: the profile's"})
    max_turns: int | None = field(default=None, metadata={"option": False})
    # budget="tokens": None is the sft size's, capped by the smallest dataset.
    token_budget: int | None = field(
        default=None, metadata={"help": "training tokens per arm (default: the profile's)"}
    )
    budget: str = field(
        default="tokens",
        metadata={
            "choices": BUDGETS,
            "help": (
                "tokens: every SFT arm gets the same training tokens (default); tasks: "
                "every arm trains on its own trajectories of every training task"
            ),
        },
    )
    # Each SFT arm at each budget, evaluated on evolved + unseen.
    curve: tuple[int, ...] = field(
        default=(),
        metadata={
            "help": (
                "a learning curve too: SFT token budgets, e.g. 25k,50k,100k,1000k "
                "(a budget beyond a dataset is the whole dataset)"
            ),
            "parse": token_counts,
        },
    )
    rl_steps: int | None = field(default=None, metadata={"help": "GRPO steps per RL arm (default: the profile's)"})
    ship: str | None = field(
        default=None,
        metadata={"help": "also copy the trained adapters here (data/adapters is what notebooks 03 and 04 load)"},
    )
    micro_batch: int = field(default=4, metadata=MICRO_BATCH_OPTION)
    # Only the SFT runs the chosen arms need are trained.
    arms: tuple[str, ...] = field(
        default=ARMS,
        metadata={
            "help": "comma-separated arms to evaluate and report (default: all six); only the SFT runs they need train",
            "parse": lambda text: tuple(text.split(",")),
        },
    )
    engine: str = field(default="auto", metadata=ENGINE_OPTION)  # for evaluation and GRPO

    def __post_init__(self) -> None:
        unknown = [arm for arm in self.arms if arm not in ARMS]
        if unknown or not self.arms:
            raise ValueError(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
        self.arms = tuple(arm for arm in ARMS if arm in self.arms)
        if self.budget not in BUDGETS:
            raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {self.budget!r}")
        if any(b <= 0 for b in self.curve):
            raise ValueError(f"learning-curve budgets must be positive token counts, got {list(self.curve)}")
        self.curve = tuple(sorted(set(self.curve)))
        size = get_profile(self.profile).ablation
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
            "--budget": self.budget != "tokens" and self.budget,
            "--curve": self.curve and ",".join(map(str, self.curve)),
            "--rl-steps": self.rl_steps,
            "--micro-batch": self.micro_batch != 4 and self.micro_batch,
            "--engine": self.engine != "auto" and self.engine,
            "--report": self.report != "reports/ablation.md" and self.report,
        }
        extra = "".join(f" {flag} {value}" for flag, value in options.items() if value)
        arms = "" if self.arms == ARMS else f" --arms {','.join(self.arms)}"
        return (
            f"labkit ablation --profile {self.profile} --n {self.n} --seeds {self.seeds}{extra} --out {self.out}{arms}"
        )


def dataset_tokens(config: AblationConfig, tokenizer) -> dict[str, int]:
    """Training tokens in the whole dataset of each SFT arm to train (the rows that fit the profile's max_length)."""
    max_length = SFTRunConfig(profile=config.profile).max_length
    totals = {}
    for arm in config.sft_arms:
        lengths = token_lengths(load_dataset_dir(config.datasets[arm]), tokenizer)
        totals[arm] = sum(n for n in lengths if n <= max_length)
    return totals


def arm_budgets(config: AblationConfig, totals: dict[str, int]) -> dict[str, int]:
    """Each SFT arm's training tokens: one matched budget (the profile's, or less when a dataset cannot
    fill it), or with ``budget="tasks"`` each arm's whole dataset (``totals``, from :func:`dataset_tokens`)."""
    if config.budget == "tasks":
        return totals
    wanted = SFTRunConfig(profile=config.profile, token_budget=config.token_budget).token_budget
    matched = min([*totals.values(), wanted] if wanted else totals.values(), default=0)
    return {arm: matched for arm in totals}


def sft_config(config: AblationConfig, arm: str, budget: int, out: str | None = None) -> SFTRunConfig:
    return SFTRunConfig(
        data=config.datasets[arm], profile=config.profile, out=out or f"{config.out}/{arm}", token_budget=budget
    )


def rl_config(config: AblationConfig, arm: str) -> RLRunConfig:
    start = RL_ARMS[arm]
    init = f"{config.out}/{start}" if start else get_profile(config.profile).model
    return RLRunConfig(
        init=init,
        profile=config.profile,
        out=f"{config.out}/{arm}",
        tasks=f"{config.data}/{TRAIN_TASKS}",
        steps=config.rl_steps,
        micro_batch=config.micro_batch,
        engine=config.engine,
    )


def eval_config(
    config: AblationConfig, arm: str, split: str, policy: str | None = None, out: str | None = None
) -> EvalConfig:
    policy = policy or (get_profile(config.profile).model if arm == "base" else f"{config.out}/{arm}")
    return EvalConfig(
        policy=policy,
        split=split,
        n=config.n,
        seeds=config.seeds,
        profile=config.profile,
        max_turns=config.max_turns,
        out=out or f"{config.out}/eval/{arm}-{split}",
        engine=config.engine,
    )


def curve_points(config: AblationConfig, totals: dict[str, int]) -> list[tuple[str, int]]:
    """The learning curve's (arm, token budget) runs; a budget beyond an arm's dataset becomes the whole dataset."""
    return sorted(
        {(arm, min(budget, totals[arm])) for arm in config.sft_arms if arm in config.arms for budget in config.curve}
    )


def curve_out(config: AblationConfig, arm: str, budget: int) -> str:
    return f"{config.out}/curve/{arm}-{budget}"


def curve_eval_config(config: AblationConfig, arm: str, budget: int, budgets: dict[str, int], split: str) -> EvalConfig:
    """The evaluation of a learning-curve run: the ablation's own where the budget is the arm's there (``budgets``)."""
    if budget == budgets.get(arm):
        return eval_config(config, arm, split)
    out = curve_out(config, arm, budget)
    return eval_config(config, arm, split, policy=out, out=f"{out}/eval-{split}")


def learning_curve(
    config: AblationConfig, totals: dict[str, int], budgets: dict[str, int], progress: bool = True
) -> dict[str, list[dict]]:
    """Train each SFT arm at each of ``config.curve``'s budgets and evaluate it on evolved + unseen.

    A budget equal to the arm's own in the ablation (``budgets``) reads that run and its evaluations back.
    Returns ``{arm: [{"tokens", "rows", "whole", "success", "success_ci95", "evolved", "unseen"}, ...]}`` by budget;
    ``whole`` marks a run on the arm's whole dataset, where the arms meet at matched tasks rather than tokens.
    """
    curves: dict[str, list[dict]] = {}
    for arm, budget in curve_points(config, totals):
        own = budget == budgets.get(arm)
        out = f"{config.out}/{arm}" if own else curve_out(config, arm, budget)
        if progress:
            tqdm.write(f"[ablation] learning curve: {arm} at {budget} tokens")
        card = train_sft(sft_config(config, arm, budget, out=out), progress=progress)
        evals = {split: curve_eval_config(config, arm, budget, budgets, split) for split in HARD}
        by_split = {split: evaluate(ec, progress=progress) for split, ec in evals.items()}
        pooled = bootstrap_metrics([row for ec in evals.values() for row in evaluation_rows(ec)])
        curves.setdefault(arm, []).append(
            {
                "tokens": card["data"]["tokens"],
                "rows": card["data"]["rows"],
                "whole": budget == totals[arm],
                "success": pooled["success"],
                "success_ci95": pooled["success_ci95"],
                **{split: by_split[split]["success"] for split in HARD},
            }
        )
    return curves


def matched_task_gaps(
    config: AblationConfig, totals: dict[str, int], budgets: dict[str, int]
) -> dict[str, dict[str, dict]]:
    """Paired differences between the SFT arms the learning curve trained on their whole datasets: each has seen its
    own trajectories of every training task once (the matched-task comparison). By split and pooled, as the table's."""
    whole = [arm for arm in totals if arm in config.arms and max(config.curve, default=0) >= totals[arm]]

    def rows(arm: str, splits: tuple[str, ...]) -> list[dict]:
        return [row for s in splits for row in evaluation_rows(curve_eval_config(config, arm, totals[arm], budgets, s))]

    return {
        f"{a} minus {b}": {
            "+".join(splits): success_gap(rows(a, splits), rows(b, splits)) for splits in (*((s,) for s in HARD), HARD)
        }
        for a, b in GAPS
        if a in whole and b in whole
    }


def run_ablation(config: AblationConfig, progress: bool = True) -> dict:
    """Train, evaluate and report.

    Returns ``{"runs": {arm: SFT card}, "rl_runs": {arm: GRPO card}, "metrics": {(arm, split): metrics},
    "pooled": {arm: metrics on evolved + unseen}, "budgets", "curves", "matched_task_gaps" (:func:`matched_task_gaps`),
    "seconds": {stage: s}}``;
    a stage read back from a finished run takes next to no time.
    """
    from labkit.models import load_tokenizer

    tokenizer = load_tokenizer(get_profile(config.profile).model)
    totals = dataset_tokens(config, tokenizer)  # tokenizes every dataset: once, for the budgets and the curve
    budgets = arm_budgets(config, totals)
    seconds, clock = {}, time.perf_counter()
    runs = {}
    for arm in config.sft_arms:
        if progress:
            tqdm.write(f"[ablation] training {arm} on {config.datasets[arm]} ({budgets[arm]} tokens)")
        runs[arm] = train_sft(sft_config(config, arm, budgets[arm]), progress=progress)
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
    seconds["evaluation"], clock = time.perf_counter() - clock, time.perf_counter()
    curves = learning_curve(config, totals, budgets, progress) if config.curve else {}
    if curves:
        seconds["learning curve"] = time.perf_counter() - clock
    pooled = pooled_metrics(config)
    matched = matched_task_gaps(config, totals, budgets) if curves else {}
    result = {
        "runs": runs,
        "rl_runs": rl_runs,
        "metrics": metrics,
        "pooled": pooled,
        "budgets": budgets,
        "curves": curves,
        "matched_task_gaps": matched,
        "seconds": seconds,
    }
    write_ablation_report(config, result)
    return result


# ----------------------------------------------------------------------------- the comparison


def arm_rows(config: AblationConfig, arm: str, splits: tuple[str, ...]) -> list[dict]:
    return [row for split in splits for row in evaluation_rows(eval_config(config, arm, split))]


def success_table(config: AblationConfig, metrics: dict, pooled: dict) -> list[str]:
    """Markdown rows: each arm's success per split and on evolved + unseen pooled."""
    return [
        "| arm | " + " | ".join(SPLITS) + " | evolved + unseen |",
        "|:--|" + "--:|" * (len(SPLITS) + 1),
        *[
            f"| {arm} | "
            + " | ".join(format_metric(metrics[(arm, s)], "success") for s in SPLITS)
            + f" | {format_metric(pooled[arm], 'success')} |"
            for arm in config.arms
        ],
    ]


def pooled_metrics(config: AblationConfig, splits: tuple[str, ...] = HARD) -> dict:
    return {arm: bootstrap_metrics(arm_rows(config, arm, splits)) for arm in config.arms}


def write_ablation_report(config: AblationConfig, result: dict) -> Path:
    from labkit import plots
    from labkit.evaluate import FAILURES, robustness_by_policy

    report = Path(config.report)
    (report.parent / "figures").mkdir(parents=True, exist_ok=True)
    # Named after the report, so that a report of a few arms beside the full one keeps its own plots.
    figure = {
        name: f"figures/{report.stem}_{name}.png"
        for name in ("success", "robustness", "failures", "loss", "grpo", "curve")
    }
    metrics = result["metrics"]
    charts = {
        "success": plots.success_by_split({(arm, split): m for (arm, split), m in metrics.items()}),
        "robustness": plots.robustness_curve(robustness_by_policy(metrics)),
        "failures": plots.failure_taxonomy(
            {
                arm: {f: sum(metrics[(arm, s)]["failures"].get(f, 0) for s in SPLITS) for f in FAILURES}
                for arm in config.arms
            },
            FAILURES,
        ),
    }
    if result["runs"]:
        charts["loss"] = plots.loss_curve({arm: card["loss_curve"] for arm, card in result["runs"].items()})
    if result["rl_runs"]:
        charts["grpo"] = plots.rl_curves({arm: card["history"] for arm, card in result["rl_runs"].items()})
    if result["curves"]:
        charts["curve"] = plots.learning_curve(result["curves"])
    for name, chart in charts.items():
        plots.save(chart, report.parent / figure[name], config.command())

    pooled = result["pooled"]
    pairs = [(a, b) for a, b in GAPS if a in config.arms and b in config.arms]
    # Each difference on every split the thesis is about, and on them pooled (what the targets are checked on).
    by_split = {
        pair: {
            "+".join(splits): success_gap(*(arm_rows(config, arm, splits) for arm in pair))
            for splits in (*((s,) for s in HARD), HARD)
        }
        for pair in pairs
    }
    gaps = {pair: by_split[pair][POOLED] for pair in pairs}
    report.write_text(
        render(
            "ablation_report.md.jinja",
            config=config,
            model=get_profile(config.profile).model,
            runs=result["runs"],
            rl_runs=result["rl_runs"],
            budgets=result["budgets"],
            curves=result["curves"],
            matched_task_gaps=result["matched_task_gaps"],
            pooled=pooled,
            evolved_by_arm={arm: metrics[(arm, "evolved")] for arm in config.arms},
            success_table=success_table(config, metrics, pooled),
            differences={f"{a} minus {b}": splits for (a, b), splits in by_split.items()},
            target_checks=target_checks(pooled, gaps),
            figure=figure,
            format_metric=format_metric,
            gap_text=_gap_text,
            level_cell=_level_cell,
        ),
        encoding="utf-8",
    )
    report.with_suffix(".json").write_text(json.dumps(summary(config, result, by_split), indent=2), encoding="utf-8")
    return report


def summary(config: AblationConfig, result: dict, gaps: dict) -> dict:
    """The report's figures for programs (the demo compares itself with the full ablation's): success per arm and
    split and on evolved + unseen, the gaps, the SFT budgets and the learning curve, with the command that made them."""
    cell = ("success", "success_ci95", "n")
    return {
        "command": config.command(),
        "n": config.n,
        "seeds": config.seeds,
        "budgets": result["budgets"],
        "success": {f"{arm}/{split}": {k: m[k] for k in cell} for (arm, split), m in result["metrics"].items()}
        | {f"{arm}/{POOLED}": {k: m[k] for k in cell} for arm, m in result["pooled"].items()},
        "gaps": {f"{a} minus {b}": splits for (a, b), splits in gaps.items()},  # by split, and pooled (POOLED)
        "curves": result["curves"],
        "matched_task_gaps": result["matched_task_gaps"],  # between the curve's whole-dataset runs, by split and pooled
    }


def target_checks(pooled: dict, gaps: dict) -> list[str]:
    """The report's verdict on the thesis: each target, met or not, with the figure that decides it.

    A gap counts as met only when its point estimate reaches the target and its 95% interval lies above zero.
    """
    lines = []
    for better, worse, wanted in TARGET_GAPS:
        gap = gaps.get((better, worse))
        if gap is not None:
            met = gap["gap"] >= wanted and gap["ci95"][0] is not None and gap["ci95"][0] > 0
            lines.append(
                f"| {better} beats {worse} by at least {wanted:.2f}, interval "
                f"above zero | {_gap_text(gap)} | {'met' if met else 'not met'} |"
            )
    if "sft-trial" in pooled:
        rate = pooled["sft-trial"]["error_recovery_rate"]
        met = rate == rate and rate >= TARGET_RECOVERY  # nan: no errors to recover from
        lines.append(
            f"| sft-trial's error-recovery rate at least {TARGET_RECOVERY} | "
            f"{format_metric(pooled['sft-trial'], 'error_recovery_rate')} | {'met' if met else 'not met'} |"
        )
    if not lines:
        return []
    return ["The thesis's targets, on evolved + unseen:", "", "| target | measured | |", "|:--|:--|:--|", *lines, ""]


def _level_cell(metrics: dict, level: int) -> str:
    cell = metrics["success_by_level"].get(str(level))
    if not cell:
        return "n/a"
    return f"{cell['success']:.2f} [{cell['ci95'][0]:.2f}, {cell['ci95'][1]:.2f}] (n={cell['n']})"


def _gap_text(gap: dict) -> str:
    low, high = gap["ci95"]
    return f"{gap['gap']:+.3f}" + (f" [{low:+.3f}, {high:+.3f}]" if low is not None else "")
