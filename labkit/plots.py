"""Figures the notebooks and reports show. Plain matplotlib ``Figure`` objects, no pyplot state."""

from __future__ import annotations

from collections import Counter

from matplotlib.figure import Figure

PHASE_COLOURS = {"trial": "#3b82f6", "execution": "#16a34a", "error": "#dc2626", "answer": "#7c3aed"}


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
    """One small bar chart per field of ``lessons.task_summary``."""
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
        bins = range(low, high + 2) if high - low < 25 else 25  # whole-number bins for small counts, shared by every dataset
        for colour, (name, values) in zip(colours, stats.items()):
            ax.hist(values[field], bins=bins, range=(low, high + 1), alpha=0.6, color=colour, label=name)
        ax.set_title(field)
    axes[0].set_ylabel("episodes")
    axes[0].legend()
    return fig
