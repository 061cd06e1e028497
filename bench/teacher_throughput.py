"""Teacher generation throughput, against the bare episode loop with the cheapest policy.

Run: python -m bench teach
"""

from __future__ import annotations

import time

from labkit.teach import TeachConfig, run_teacher, teacher_tasks
from labkit.tools import load_catalog


def run(n_tasks: int = 400) -> list[dict]:
    catalog = load_catalog()
    timings = {}
    for teacher in ("golden", "trial"):
        config = TeachConfig(teacher=teacher, split="train", n=n_tasks, seed=0)
        tasks = teacher_tasks(config, catalog)
        start = time.perf_counter()
        rows, failed = run_teacher(config, tasks, catalog, progress=False)
        timings[teacher] = (time.perf_counter() - start, len(rows), len(failed))
    base = timings["golden"][0]
    return [
        {"teacher": name, "seconds": s, "rows": rows, "failed": failed, "per_s": rows / s, "ratio": s / base}
        for name, (s, rows, failed) in timings.items()
    ]


def report(results: list[dict]) -> str:
    lines = [
        "## Teacher throughput: 400 train tasks, each trajectory generated, turned into a row and verified by replay",
        "",
        "| teacher | trajectories | failed | seconds | trajectories/s | time vs golden (baseline) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['teacher']} | {r['rows']} | {r['failed']} | "
            f"{r['seconds']:.2f} | {r['per_s']:.0f} | {r['ratio']:.2f}x |"
        )
    lines += [
        "",
        "The golden teacher runs at level 0 with one call per hop: the cheapest possible episode.",
        "command: python -m bench teach",
    ]
    return "\n".join(lines)
