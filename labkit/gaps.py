"""Differences in success between two sets of evaluated episodes, with 95% bootstrap intervals.

    labkit compare runs/t800/eval/sft-trial-evolved runs/t800/eval/sft-trial-unseen \\
        --minus runs/ablation/curve/sft-trial-279343/eval-evolved runs/ablation/curve/sft-trial-279343/eval-unseen

The ablation uses :func:`success_gap` for the differences between its arms; ``labkit compare`` applies it to any two
evaluation folders (``episodes.jsonl`` logs written by ``labkit eval``), so one run can be set against another: the
same arm with more training tasks, a new teacher against the old. When both sides played the same episodes (split,
seed and task) the comparison is paired, which is what makes a small difference decidable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labkit.data import DatasetFileError, read_rows


def _episode_key(row: dict) -> tuple | None:
    return (row["eval_split"], row["seed"], row["task_id"]) if {"eval_split", "seed", "task_id"} <= set(row) else None


def success_gap(rows_a: list[dict], rows_b: list[dict], resamples: int = 2000, seed: int = 0) -> dict:
    """Success of A minus success of B, with a 95% bootstrap interval.

    When both arms played the same episodes (split, seed and task), the episodes are resampled
    in pairs, so the task-to-task spread that both arms share does not widen the interval;
    otherwise each arm is resampled on its own.
    """
    keys_a, keys_b = [_episode_key(r) for r in rows_a], [_episode_key(r) for r in rows_b]
    paired = None not in keys_a and len(set(keys_a)) == len(keys_a) and set(keys_a) == set(keys_b)
    if paired:
        by_key = {k: float(r["success"]) for k, r in zip(keys_b, rows_b)}
        rows_b = [{"success": by_key[k]} for k in keys_a]
    a = np.array([float(r["success"]) for r in rows_a])
    b = np.array([float(r["success"]) for r in rows_b])
    if not a.size or not b.size:
        return {"gap": float("nan"), "ci95": [None, None], "paired": False}
    rng = np.random.default_rng(seed)
    if paired:
        picks = rng.integers(0, a.size, (resamples, a.size))
        gaps = a[picks].mean(1) - b[picks].mean(1)
    else:
        gaps = rng.choice(a, (resamples, a.size)).mean(1) - rng.choice(b, (resamples, b.size)).mean(1)
    return {
        "gap": float(a.mean() - b.mean()),
        "ci95": [float(np.percentile(gaps, 2.5)), float(np.percentile(gaps, 97.5))],
        "paired": paired,
    }


# ----------------------------------------------------------------------------- comparing evaluation folders


@dataclass
class Comparison:
    """One row of ``labkit compare``: A's success minus B's on the episodes both played (or all, unpaired)."""

    label: str
    success_a: float
    success_b: float
    gap: float
    ci95: tuple[float | None, float | None]
    paired: bool
    episodes: int  # the episodes compared (per side, when paired)
    left_out: int  # episodes only one side played, dropped to keep the comparison paired


def read_episodes(folder: str | Path) -> list[dict]:
    """The episodes an evaluation folder holds, or a DatasetFileError that says what to run."""
    folder = Path(folder)
    log = folder / "episodes.jsonl" if folder.is_dir() else folder
    if not log.is_file():
        raise DatasetFileError(
            f"no evaluation at {folder}: expected an episodes.jsonl written by `labkit eval --out {folder}`"
        )
    rows = list(read_rows(log))
    if not rows:
        raise DatasetFileError(f"{log} holds no episodes; rerun the `labkit eval` that writes it")
    for lineno, row in enumerate(rows, 1):
        if not isinstance(row.get("success"), (bool, int, float)):
            raise DatasetFileError(f"{log}: episode {lineno} has no 'success'; is this a `labkit eval` log?")
    return rows


def _common_episodes(rows_a: list[dict], rows_b: list[dict]) -> tuple[list[dict], list[dict], int]:
    """Both sides cut to the episodes they share (keyed by split, seed and task), and how many were left out.
    Unkeyed or duplicated episodes cannot be paired: they come back whole."""
    keys_a, keys_b = [_episode_key(r) for r in rows_a], [_episode_key(r) for r in rows_b]
    keyed = None not in keys_a + keys_b and len(set(keys_a)) == len(keys_a) and len(set(keys_b)) == len(keys_b)
    shared = set(keys_a) & set(keys_b) if keyed else set()
    if not shared:
        return rows_a, rows_b, 0
    left_out = len(rows_a) + len(rows_b) - 2 * len(shared)
    return [r for r in rows_a if _episode_key(r) in shared], [r for r in rows_b if _episode_key(r) in shared], left_out


def _comparison(label: str, rows_a: list[dict], rows_b: list[dict]) -> Comparison:
    rows_a, rows_b, left_out = _common_episodes(rows_a, rows_b)
    gap = success_gap(rows_a, rows_b)
    return Comparison(
        label=label,
        success_a=float(np.mean([float(r["success"]) for r in rows_a])),
        success_b=float(np.mean([float(r["success"]) for r in rows_b])),
        gap=gap["gap"],
        ci95=tuple(gap["ci95"]),
        paired=gap["paired"],
        episodes=len(rows_a),
        left_out=left_out,
    )


def compare_evaluations(folders_a: list[str | Path], folders_b: list[str | Path]) -> list[Comparison]:
    """A's folders against B's, pair by pair in the order given, then all of them pooled (when there are several)."""
    if len(folders_a) != len(folders_b) or not folders_a:
        raise ValueError(
            f"give as many folders after --minus as before it (got {len(folders_a)} and {len(folders_b)}): "
            "they are compared pair by pair, e.g. A-evolved A-unseen --minus B-evolved B-unseen"
        )
    sides = [(read_episodes(a), read_episodes(b)) for a, b in zip(folders_a, folders_b)]
    rows = [_comparison(_label(a, b), *pair) for a, b, pair in zip(folders_a, folders_b, sides)]
    if len(sides) > 1:
        rows.append(_comparison("pooled", [r for a, _ in sides for r in a], [r for _, b in sides for r in b]))
    return rows


def _label(folder_a: str | Path, folder_b: str | Path) -> str:
    """The last two parts of each path: ``eval-unseen`` alone would not say whose evaluation it is."""
    return " minus ".join("/".join(Path(folder).parts[-2:]) for folder in (folder_a, folder_b))


def comparison_table(rows: list[Comparison]) -> list[str]:
    """Markdown rows of a comparison."""
    lines = ["| comparison | A | B | A - B [95% CI] | episodes |", "|:--|--:|--:|--:|--:|"]
    for row in rows:
        low, high = row.ci95
        interval = f"{row.gap:+.3f} [{low:+.3f}, {high:+.3f}]" if low is not None else "n/a"
        how = "paired" if row.paired else "unpaired"
        dropped = f", {row.left_out} left out" if row.left_out else ""
        table_row = f"| {row.label} | {row.success_a:.3f} | {row.success_b:.3f} | {interval} |"
        lines.append(f"{table_row} {row.episodes} {how}{dropped} |")
    return lines
