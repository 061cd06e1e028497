"""Figures the notebooks and reports show. Plain matplotlib ``Figure`` objects, no pyplot state."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from labkit.rewards import COMPONENTS

PHASE_COLOURS = {"trial": "#3b82f6", "execution": "#16a34a", "error": "#dc2626", "answer": "#7c3aed"}


def save(fig: Figure, path: str | Path, command: str) -> None:
    """Write a figure with the command that reproduces it printed under it, so that a figure copied into a slide
    or an issue still says where it came from."""
    # About 16 monospace characters of 7 pt fit an inch; the canvas grows downwards to hold the lines.
    lines = textwrap.wrap(f"$ {command}", width=int(fig.get_figwidth() * 16), break_on_hyphens=False)
    fig.text(0.01, 0, "\n".join(lines), ha="left", va="top", fontsize=7, family="monospace", color="0.35")
    fig.savefig(path, dpi=110, bbox_inches="tight")


def failure_by_level(rates: dict[int, float]) -> Figure:
    """Bar chart: share of documented calls that fail at each evolution level."""
    fig = Figure(figsize=(6, 3.2), layout="constrained")
    ax = fig.subplots()
    levels = sorted(rates)
    bars = ax.bar([str(level) for level in levels], [rates[level] for level in levels], color=PHASE_COLOURS["error"])
    ax.bar_label(bars, labels=[f"{rates[level]:.0%}" for level in levels])
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("evolution level")
    ax.set_ylabel("documented calls that fail")
    ax.set_title("Old docs against changed tools")
    return fig


def task_summary(summary: dict[str, Counter]) -> Figure:
    """One small bar chart per field of ``labkit.tasks.task_summary``."""
    fig = Figure(figsize=(11, 3), layout="constrained")
    axes = fig.subplots(1, len(summary))
    for ax, (field, counts) in zip(axes, summary.items()):
        keys = sorted(counts, key=str)
        ax.bar([str(k) for k in keys], [counts[k] for k in keys], color=PHASE_COLOURS["trial"])
        ax.set_title(field)
        ax.tick_params(axis="x", labelrotation=45 if field == "family" else 0)
    axes[0].set_ylabel("tasks")
    return fig


def dataset_comparison(stats: dict[str, dict[str, list]]) -> Figure:
    """Side-by-side histograms of per-episode numbers for several datasets (``{name: dataset_stats}``)."""
    fields = list(next(iter(stats.values())))
    fig = Figure(figsize=(4 * len(fields), 3), layout="constrained")
    axes = fig.subplots(1, len(fields))
    colours = [PHASE_COLOURS["trial"], PHASE_COLOURS["execution"], PHASE_COLOURS["answer"]]
    for ax, field in zip(axes, fields):
        everything = [v for values in stats.values() for v in values[field]]
        low, high = min(everything, default=0), max(everything, default=1)
        # Whole-number bins for small counts, shared by every dataset.
        bins = range(low, high + 2) if high - low < 25 else 25
        for colour, (name, values) in zip(colours, stats.items()):
            ax.hist(values[field], bins=bins, range=(low, high + 1), alpha=0.6, color=colour, label=name)
        ax.set_title(field)
    axes[0].set_ylabel("episodes")
    axes[0].legend()
    return fig


def robustness_curve(by_policy: dict[str, dict[str, dict]]) -> Figure:
    """Success against evolution level, one line per policy, with 95% intervals as bands."""
    fig = Figure(figsize=(6, 3.4), layout="constrained")
    ax = fig.subplots()
    for name, by_level in by_policy.items():
        levels = sorted(by_level, key=int)
        x = [int(level) for level in levels]
        y = [by_level[level]["success"] for level in levels]
        ax.plot(x, y, marker="o", label=name)
        ax.fill_between(
            x,
            [by_level[level]["ci95"][0] for level in levels],
            [by_level[level]["ci95"][1] for level in levels],
            alpha=0.2,
        )
    ax.set_xlabel("evolution level")
    ax.set_ylabel("success")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xticks(range(5))
    ax.set_title("Robustness to changed tools")
    ax.legend(fontsize=8)
    return fig


def failure_taxonomy(by_policy: dict[str, dict[str, int]], order: tuple[str, ...]) -> Figure:
    """Horizontal bars: how many failed episodes fall under each cause, per policy."""
    fig = Figure(figsize=(7, 0.35 * len(order) + 1.2), layout="constrained")
    ax = fig.subplots()
    height = 0.8 / max(1, len(by_policy))
    for i, (name, counts) in enumerate(by_policy.items()):
        ax.barh(
            [j + i * height for j in range(len(order))], [counts.get(f, 0) for f in order], height=height, label=name
        )
    ax.set_yticks(
        [j + height * (len(by_policy) - 1) / 2 for j in range(len(order))], labels=[f.replace("_", " ") for f in order]
    )
    ax.invert_yaxis()
    ax.set_xlabel("failed episodes")
    ax.set_title("Failure taxonomy")
    ax.legend(fontsize=8)
    return fig


def success_by_split(results: dict) -> Figure:
    """Grouped bars of success with 95% intervals: ``{(policy, split): metrics}``."""
    policies = list(dict.fromkeys(p for p, _ in results))
    splits = list(dict.fromkeys(s for _, s in results))
    fig = Figure(figsize=(7, 3.4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(policies)
    for i, policy in enumerate(policies):
        xs, ys, errs = [], [], [[], []]
        for j, split in enumerate(splits):
            metrics = results.get((policy, split))
            if metrics is None:
                continue
            low, high = metrics["success_ci95"]
            xs.append(j + i * width)
            ys.append(metrics["success"])
            errs[0].append(metrics["success"] - low)
            errs[1].append(high - metrics["success"])
        ax.bar(xs, ys, width=width, yerr=errs, capsize=3, label=policy)
    ax.set_xticks([j + width * (len(policies) - 1) / 2 for j in range(len(splits))], labels=splits)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success")
    ax.legend(fontsize=8)
    return fig


def loss_curve(curves: dict[str, list]) -> Figure:
    """Training loss against step, one line per run: ``{name: [[step, loss], ...]}``."""
    fig = Figure(figsize=(6, 3.2), layout="constrained")
    ax = fig.subplots()
    for name, points in curves.items():
        if points:
            steps, losses = zip(*points)
            ax.plot(steps, losses, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (assistant tokens)")
    ax.set_title("SFT loss")
    if any(curves.values()):
        ax.legend(fontsize=8)
    return fig


def rl_curves(histories: dict[str, list[dict]]) -> Figure:
    """GRPO by step, one line per run: total reward, success, trials per episode and tool-call rate.

    ``histories`` maps a run's name to its ``labkit.rl.step_history``.
    """
    panels = (
        ("reward", "reward (weighted sum)"),
        ("episode/success", "success"),
        ("episode/trials", "trials per episode"),
        ("episode/tool_call_rate", "tool calls per turn"),
    )
    fig = Figure(figsize=(11, 2.8), layout="constrained")
    for ax, (key, title) in zip(fig.subplots(1, len(panels)), panels):
        for name, history in histories.items():
            points = [(e["step"], e[key]) for e in history if e.get(key) is not None]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, marker="o", markersize=3, label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
    if len(histories) > 1:
        fig.axes[0].legend(fontsize=8)
    return fig


def learning_curve(curves: dict[str, list[dict]]) -> Figure:
    """Success against SFT training tokens, one line per arm: on evolved and on unseen tools (points only: one
    split's interval is not in a point), and on both pooled, with 95% intervals.

    ``curves`` maps an arm to points ``{"tokens", "evolved", "unseen", "success", "success_ci95"}``
    (``labkit.ablation.learning_curve``).
    """
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    panels = fig.subplots(1, 3, sharey=True)
    for ax, split in zip(panels, ("evolved", "unseen", "success")):
        for name, points in curves.items():
            tokens = [p["tokens"] for p in points]
            success = [p[split] for p in points]
            if split == "success":
                low = [p["success"] - p["success_ci95"][0] for p in points]
                high = [p["success_ci95"][1] - p["success"] for p in points]
                ax.errorbar(tokens, success, yerr=[low, high], marker="o", capsize=3, label=name)
            else:
                ax.plot(tokens, success, marker="o", label=name)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # the 2x, 3x... labels of a log axis overlap at this width
        ax.set_xlabel("SFT training tokens")
        ax.set_title("evolved + unseen" if split == "success" else split)
    panels[0].set_ylabel("success")
    panels[0].set_ylim(0, 1)
    fig.suptitle("Learning curve")
    if curves:
        panels[-1].legend(fontsize=8)
    return fig


def group_chart(table: list[dict]) -> Figure:
    """Left: each episode's reward as stacked weighted components, the total as a dot. Right: its advantage."""
    colours = dict(zip(COMPONENTS, ("#16a34a", "#3b82f6", "#dc2626", "#f59e0b", "#7c3aed", "#0891b2", "#6b7280")))
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    rewards_ax, advantages_ax = fig.subplots(1, 2)
    episodes = [str(r["episode"]) for r in table]
    up, down = [0.0] * len(table), [0.0] * len(table)
    for name in COMPONENTS:
        values = [r[name] for r in table]
        bottoms = [u if v >= 0 else d for v, u, d in zip(values, up, down)]
        rewards_ax.bar(episodes, values, bottom=bottoms, color=colours[name], label=name)
        up = [u + max(v, 0) for u, v in zip(up, values)]
        down = [d + min(v, 0) for d, v in zip(down, values)]
    rewards_ax.plot(episodes, [r["reward"] for r in table], "ko", label="reward")
    rewards_ax.axhline(0, color="black", linewidth=0.5)
    rewards_ax.set(title="reward = sum of weighted components", xlabel="episode")
    rewards_ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    advantages = [r["advantage"] for r in table]
    advantages_ax.bar(episodes, advantages, color=["#16a34a" if a > 0 else "#dc2626" for a in advantages])
    advantages_ax.axhline(0, color="black", linewidth=0.5)
    advantages_ax.set(title="advantage (pushed up if > 0, down if < 0)", xlabel="episode")
    return fig


def collapse_chart(table: list[dict]) -> Figure:
    """Mean reward per policy, guards off beside guards on."""
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.subplots()
    x = range(len(table))
    for offset, (guards, colour) in zip((-0.2, 0.2), (("off", "#f59e0b"), ("on", "#3b82f6"))):
        values = [r[f"reward, guards {guards}"] for r in table]
        bars = ax.bar([i + offset for i in x], values, width=0.4, color=colour, label=f"guards {guards}")
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7)
    ax.set_xticks(list(x), [r["policy"] for r in table])
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylabel("mean reward per episode")
    ax.set_title("Honest agents and reward hackers on changed tools")
    ax.legend(fontsize=8)
    return fig


def gap_chart(rows: list) -> Figure:
    """Differences in success with their 95% intervals, one line each (``labkit.gaps.Comparison`` rows):
    an interval clear of zero is a difference the episodes decide."""
    fig = Figure(figsize=(7, 0.6 + 0.45 * len(rows)), layout="constrained")
    ax = fig.subplots()
    for y, row in enumerate(reversed(rows)):
        low, high = row.ci95
        decided = low is not None and (low > 0 or high < 0)
        colour = "#16a34a" if decided and row.gap > 0 else "#dc2626" if decided else "#6b7280"
        if low is not None:
            ax.plot([low, high], [y, y], color=colour, linewidth=2)
        ax.plot([row.gap], [y], "o", color=colour)
    ax.axvline(0, color="black", linewidth=0.5)
    ax.set_yticks(range(len(rows)), [row.label for row in reversed(rows)], fontsize=8)
    ax.set_xlabel("difference in success (A - B), 95% interval")
    return fig
