"""Trace viewer latency on a 10,000-episode run: opening it, and switching episodes, in the library and over HTTP.

Baseline: the eager way, parsing every row of the file with json before showing anything, then rendering
from memory. Run: python -m bench view
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from labkit.data import load_dataset_dir
from labkit.trace_files import TraceLibrary
from labkit.trace_html import episode_html
from labkit.trace_queries import failure_counts, filter_options, page_of, success_by_split_level, trials_histogram

ROOT = Path(__file__).resolve().parents[1]
SWITCHES = 200


def write_run(path: Path, n: int) -> int:
    """An eval-style episodes.jsonl of ``n`` rows, cycling the shipped teacher trajectories; returns its bytes."""
    rows = [
        r
        for name in ("trial-train", "golden-train")
        for r in load_dataset_dir(ROOT / "data" / "trajectories" / name).to_list()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            row = dict(rows[i % len(rows)], task_id=f"bench-{i:05d}", seed=i // len(rows))
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path.stat().st_size


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def run(n: int = 10_000) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        log = root / "runs" / "big" / "episodes.jsonl"
        size = write_run(log, n)
        picks = random.Random(0).sample(range(n), SWITCHES)

        eager_s, eager_switch = _eager(log, picks, json.loads)
        eager_orjson_s, _ = _eager(log, picks, orjson.loads)

        library = TraceLibrary(root=root)
        open_s, opened = _timed(lambda: library.open("runs/big"))
        first_view_s, _ = _timed(
            lambda: (
                filter_options(opened.episodes),
                page_of(opened.episodes, 1),
                success_by_split_level(opened.episodes),
                trials_histogram(opened.episodes),
                failure_counts(opened.episodes),
            )
        )
        reopen_s, _ = _timed(lambda: library.open("runs/big"))
        lazy_switch = _mean_s(lambda i: episode_html(opened.row(i)), picks)
        http = _over_http(root, picks[:30])
    return {
        "episodes": n,
        "megabytes": size / 1e6,
        "eager_open_s": eager_s,
        "eager_orjson_open_s": eager_orjson_s,
        "open_s": open_s,
        "first_view_s": first_view_s,
        "reopen_s": reopen_s,
        "eager_switch_ms": 1e3 * eager_switch,
        "switch_ms": 1e3 * lazy_switch,
        **http,
    }


def _eager(log: Path, picks: list[int], loads) -> tuple[float, float]:
    """The baseline: every row parsed up front and kept, then each episode rendered from memory."""
    seconds, rows = _timed(lambda: [loads(line) for line in log.read_bytes().splitlines() if line.strip()])
    return seconds, _mean_s(lambda i: episode_html(rows[i]), picks)


def _mean_s(fn, indices) -> float:
    start = time.perf_counter()
    for i in indices:
        fn(i)
    return (time.perf_counter() - start) / len(indices)


def _over_http(root: Path, picks: list[int]) -> dict:
    """What the browser waits for: the app's own endpoints through gradio_client, on 127.0.0.1."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_OFFLINE"] = "1"
    from gradio_client import Client

    spec = importlib.util.spec_from_file_location("trace_viewer", ROOT / "apps" / "trace_viewer.py")
    trace_viewer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trace_viewer)

    demo = trace_viewer.build_app(root=root)
    url = trace_viewer.launch(demo, block=False)
    try:
        client = Client(url, verbose=False)
        # Choosing a run runs three events in a row: open it, show its first page and charts, show its first episode.
        open_s, _ = _timed(
            lambda: (
                client.predict("runs/big", api_name="/open_run"),
                client.predict("runs/big", "any", "any", "any", "any", "any", "any", "", api_name="/filter"),
                client.predict("runs/big", 0, api_name="/episode"),
            )
        )
        switches = []
        for i in picks:
            seconds, _ = _timed(lambda: client.predict("runs/big", i, api_name="/episode"))
            switches.append(seconds)
        filter_s, _ = _timed(
            lambda: client.predict("runs/big", "any", "any", "any", "any", "any", "any", "capital", api_name="/filter")
        )
        client.close()
    finally:
        demo.close(verbose=False)
    return {
        "http_open_s": open_s,
        "http_switch_ms": 1e3 * statistics.median(switches),
        "http_switch_max_ms": 1e3 * max(switches),
        "http_search_s": filter_s,
    }


def report(r: dict) -> str:
    lines = [
        f"## Trace viewer: a {r['episodes']:,}-episode eval run ({r['megabytes']:.0f} MB of JSONL)",
        "",
        "| step | viewer | eager load (baseline) | viewer / baseline |",
        "|---|---|---|---|",
        f"| open the run (index + one summary per episode) | {r['open_s']:.2f} s | "
        f"{r['eager_open_s']:.2f} s (json.loads of every row, kept) | {r['open_s'] / r['eager_open_s']:.2f}x |",
        f"| the same, against an orjson baseline (the viewer's parser) | {r['open_s']:.2f} s | "
        f"{r['eager_orjson_open_s']:.2f} s (orjson.loads of every row, kept) | "
        f"{r['open_s'] / r['eager_orjson_open_s']:.2f}x |",
        f"| switch episode (read one line, render it) | {r['switch_ms']:.2f} ms | "
        f"{r['eager_switch_ms']:.2f} ms (render from memory) | {r['switch_ms'] / r['eager_switch_ms']:.2f}x |",
        "",
        f"- first page, filter choices and the three charts: {1e3 * r['first_view_s']:.0f} ms; "
        f"opening it again while unchanged: {1e3 * r['reopen_s']:.1f} ms",
        "- over HTTP through the app's endpoints (gradio_client on 127.0.0.1): "
        "choosing the run (open, first page and charts, first episode) "
        f"{r['http_open_s']:.2f} s; switching episodes {r['http_switch_ms']:.0f} ms median, "
        f"{r['http_switch_max_ms']:.0f} ms worst of 30; "
        f"a search over all {r['episodes']:,} episodes {1e3 * r['http_search_s']:.0f} ms",
        "",
        "The viewer parses each row once to summarise it, keeps "
        "only the summary and the line's byte offset, and parses",
        "a full row again only when it is shown: switching costs one line's read and parse on top of rendering.",
        "command: python -m bench view",
    ]
    return "\n".join(lines)
