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
