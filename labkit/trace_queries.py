"""Trace queries: what the trace viewer asks of an opened run's episode summaries.

Filters and their options, the table's pages and links, the same task in two runs, GRPO rollout groups and the
charts' aggregates, all read from the :class:`labkit.trace_files.EpisodeSummary` kept per episode (no full row is
parsed here).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from labkit.evaluate import FAILURES
from labkit.trace_files import EpisodeSummary, Run, RunRef, float_or_none

# ----------------------------------------------------------------------------- filters, pages, links


ANY = ""  # a filter field left open
PAGE_SIZE = 50


@dataclass(frozen=True)
class EpisodeFilter:
    split: str = ANY
    family: str = ANY
    level: int | None = None
    policy: str = ANY
    outcome: str = ANY  # "solved" | "failed"
    failure: str = ANY
    search: str = ""

    def matches(self, e: EpisodeSummary) -> bool:
        return (
            (not self.split or e.split == self.split)
            and (not self.family or self.family in e.families)
            and (self.level is None or e.level == self.level)
            and (not self.policy or e.policy == self.policy)
            and (not self.outcome or e.success == (self.outcome == "solved"))
            and (not self.failure or e.failure == self.failure)
            and (not self.search or self.search.strip().lower() in e.haystack)
        )

    def apply(self, episodes: list[EpisodeSummary]) -> list[EpisodeSummary]:
        if self == EpisodeFilter():
            return episodes
        return [e for e in episodes if self.matches(e)]


def filter_options(episodes: list[EpisodeSummary]) -> dict[str, list]:
    """The values each filter can take in this run."""
    failures = {e.failure for e in episodes if e.failure}
    return {
        "split": sorted({e.split for e in episodes if e.split}),
        "family": sorted({f for e in episodes for f in e.families}),
        "level": sorted({e.level for e in episodes}),
        "policy": sorted({e.policy for e in episodes if e.policy}),
        "outcome": ["solved", "failed"],
        "failure": [f for f in FAILURES if f in failures] + sorted(failures - set(FAILURES)),
    }


TABLE_COLUMNS = ["episode", "task", "seed", "split", "level", "families", "policy", "outcome", "trials", "calls"]


def table_rows(episodes: list[EpisodeSummary]) -> list[list]:
    return [
        [
            e.index,
            e.task_id,
            "" if e.seed is None else e.seed,
            e.split,
            e.level,
            ", ".join(e.families),
            e.policy,
            "solved" if e.success else f"failed: {e.failure}",
            e.n_trials,
            e.n_calls,
        ]
        for e in episodes
    ]


@dataclass
class Page:
    rows: list[list]
    number: int  # 1-based, clamped to the pages there are
    pages: int
    matching: int

    def describe(self) -> str:
        return f"page {self.number} of {self.pages} ({self.matching:,} matching episodes)"


def page_of(episodes: list[EpisodeSummary], number: int, size: int = PAGE_SIZE) -> Page:
    pages = max(1, -(-len(episodes) // size))
    number = min(max(1, int(number or 1)), pages)
    return Page(table_rows(episodes[(number - 1) * size : number * size]), number, pages, len(episodes))


def episode_link(run_id: str, index: int) -> str:
    """The query string that opens this episode when appended to the viewer's address."""
    return "?" + urlencode({"run": run_id, "episode": index})


def weighted_component(value: Any, component: str, weights: dict[str, float] | None) -> Any:
    """A reward component's value times its weight, where the run's weights are known; the value as it is otherwise."""
    number = float_or_none(value)
    return number * weights[component] if weights and component in weights and number is not None else value


# ----------------------------------------------------------------------------- compare, groups, aggregates


@dataclass
class TaskPair:
    """The same task (and seed) in two runs."""

    label: str  # "task · seed  A ✓ B ✗"
    a: int  # episode index in run A
    b: int  # episode index in run B


def shared_tasks(a: Run, b: Run) -> list[TaskPair]:
    """Tasks both runs played, the ones where exactly one of them succeeded first."""

    def keyed(run: Run) -> dict[str, EpisodeSummary]:
        return {e.task_id + ("" if e.seed is None else f" · seed {e.seed}"): e for e in run.episodes}

    left, right = keyed(a), keyed(b)
    pairs = []
    for key, ea in left.items():
        eb = right.get(key)
        if eb is not None:
            mark = lambda e: "✓" if e.success else "✗"  # noqa: E731
            pairs.append((ea.success == eb.success, TaskPair(f"{key}  A {mark(ea)} B {mark(eb)}", ea.index, eb.index)))
    return [pair for _, pair in sorted(pairs, key=lambda p: p[0])]


def rollout_groups(run: Run) -> dict[tuple[int, int], list[EpisodeSummary]]:
    """(step, group) -> the rollouts of that prompt, in file order."""
    groups: dict[tuple[int, int], list[EpisodeSummary]] = defaultdict(list)
    for e in run.episodes:
        if e.group is not None:
            groups[(e.step or 0, e.group)].append(e)
    return dict(sorted(groups.items()))


def group_rows(members: list[EpisodeSummary], weights: dict[str, float] | None = None) -> tuple[list[str], list[list]]:
    """A table of one prompt's rollouts: reward, advantage, each
    reward component (times its weight, with ``weights``), outcome."""
    components = list(dict.fromkeys(k for e in members for k in (e.rewards or {})))
    named = [f"{c} × {weights[c]:g}" if weights and c in weights else c for c in components]
    header = ["rollout", "episode", "reward", "advantage", *named, "result", "trials", "calls"]
    rows = [
        [
            i,
            e.index,
            *[
                _round(v)
                for v in (
                    e.reward,
                    e.advantage,
                    *[weighted_component((e.rewards or {}).get(c), c, weights) for c in components],
                )
            ],
            "solved" if e.success else f"failed: {e.failure}",
            e.n_trials,
            e.n_calls,
        ]
        for i, e in enumerate(members)
    ]
    return header, rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def success_by_split_level(episodes: list[EpisodeSummary]) -> list[dict]:
    cells: dict[tuple[str, int], list[bool]] = defaultdict(list)
    for e in episodes:
        cells[(e.split or "?", e.level)].append(e.success)
    return [
        {
            "split · level": f"{split} · L{level} (n={len(v)})",
            "split": split,
            "level": level,
            "success": sum(v) / len(v),
            "episodes": len(v),
        }
        for (split, level), v in sorted(cells.items())
    ]


def trials_histogram(episodes: list[EpisodeSummary]) -> list[dict]:
    counts = Counter(e.n_trials for e in episodes)
    return [{"trials": str(k), "episodes": counts.get(k, 0)} for k in range(max(counts, default=-1) + 1)]


def failure_counts(episodes: list[EpisodeSummary]) -> list[dict]:
    counts = Counter(e.failure for e in episodes if e.failure)
    order = [f for f in FAILURES if f in counts] + sorted(set(counts) - set(FAILURES))
    return [{"failure": f.replace("_", " "), "episodes": counts[f]} for f in order]


def default_comparison(refs: list[RunRef]) -> tuple[str, str] | None:
    """A golden-vs-trial pair of runs on the same tasks (evolved first), for the Compare view to open with."""
    ids = {r.id for r in refs}
    pairs = [
        (r.id, r.id.replace("golden", "trial"))
        for r in refs
        if "golden" in r.id and r.id.replace("golden", "trial") in ids
    ]
    pairs.sort(key=lambda pair: "evolved" not in pair[0])
    return pairs[0] if pairs else None
