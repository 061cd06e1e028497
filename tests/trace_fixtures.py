"""A small lab folder of traces for the trace viewer's tests: real teacher episodes, plus the hostile parts.

ROOT/data/trajectories/trial-mini/data.parquet   a teacher dataset
ROOT/runs/eval/golden-evolved/episodes.jsonl     the golden teacher on evolved tasks (fails some)
ROOT/runs/eval/trial-evolved/episodes.jsonl      the trial teacher on the same tasks, with an observation
                                                 holding <script>, a long observation, HTML in a policy
                                                 name, corrupt lines and rows (level Infinity, a message
                                                 that is not an object)
ROOT/runs/grpo/rollouts/step-0000{1,2}.jsonl     GRPO groups of 4 rollouts with rewards and loss spans
ROOT/outside/episodes.jsonl                      traces the viewer must refuse, and runs/escape -> ../outside,
                                                 runs/leak/episodes.jsonl -> ../../outside/episodes.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path

from labkit.data import write_dataset
from labkit.evaluate import classify_failure
from labkit.tasks import generate_tasks
from labkit.teach import teacher_pair

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
CORRUPT_LINES = [b'{"messages": [', b"[1, 2, 3]", b'{"task_id": "no messages here"}']


def teacher_rows(catalog, n_tasks: int = 8) -> dict[str, list[dict]]:
    """Golden and trial teacher rows on the same evolved tasks, shaped like `labkit eval` rows (seed, failure)."""
    rows: dict[str, list[dict]] = {"golden": [], "trial": []}
    for task in generate_tasks("evolved", n_tasks, seed=3, catalog=catalog):
        for name, row in teacher_pair(catalog, task).items():
            row.update(seed=0, failure=classify_failure(row))
            rows[name].append(row)
    return rows


def _jsonl(path: Path, rows: list[dict], extra_lines: list[bytes] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    path.write_bytes(b"\n".join(lines + list(extra_lines)) + b"\n")


def _loss_spans(row: dict) -> list[list]:
    """Model-sampled text carries loss; tool results and the template's glue do not."""
    spans = []
    for message in row["messages"][2:]:
        if message["role"] == "assistant":
            spans.append([message["content"], True])
            for call in message.get("tool_calls") or []:
                spans.append([f"<tool_call>{json.dumps(call['function'])}</tool_call>", True])
            spans.append(["<|im_end|>\n", False])
        else:
            spans.append([f"<|im_start|>{message['role']}\n{message['content']}<|im_end|>\n", False])
    return spans


def rollout_rows(rows: list[dict], step: int) -> list[dict]:
    """Two prompts of four rollouts each, with reward components, group-normalised advantages and loss spans."""
    out = []
    for group in range(2):
        members = [dict(rows[(group * 4 + i) % len(rows)]) for i in range(4)]
        for row in members:
            row["rewards"] = {
                "outcome": float(row["success"]),
                "format": 0.1,
                "exec_errors": -0.1 * row["n_errors"],
                "trial_info": 0.2 * (row["n_trials"] > 0),
            }
            row["reward"] = sum(row["rewards"].values())
        mean = sum(r["reward"] for r in members) / 4
        spread = (sum((r["reward"] - mean) ** 2 for r in members) / 4) ** 0.5 or 1.0
        for row in members:
            row.update(step=step, group=group, advantage=(row["reward"] - mean) / spread, loss_spans=_loss_spans(row))
        out += members
    return out


def build_lab(root: Path, catalog) -> Path:
    rows = teacher_rows(catalog)
    write_dataset(rows["trial"], root / "data" / "trajectories" / "trial-mini", "# a tiny teacher dataset\n")
    _jsonl(root / "runs" / "eval" / "golden-evolved" / "episodes.jsonl", rows["golden"])
    write_dataset(rows["golden"], root / "runs" / "eval" / "golden-evolved" / "traces", "# same rows\n")

    trial = [json.loads(json.dumps(r)) for r in rows["trial"]]
    tool_messages = [m for m in trial[0]["messages"] if m["role"] == "tool"]
    tool_messages[0]["content"] = HOSTILE
    trial[0]["query"] = "<b>bold?</b> " + trial[0]["query"]
    trial[1]["messages"][-2]["content"] = "x" * 5000  # a long observation, collapsed
    trial[2]["policy"] = 'teacher:trial<img src=x onerror="window.__pwned = 3">'  # shown in the table
    torn = b'{"messages": [{"role": "user", "content": "cut off mid-wr'
    odd_rows = [
        json.dumps({**trial[3], "level": float("inf")}).encode(),
        json.dumps({**trial[3], "messages": ["not an object"]}).encode(),
    ]
    _jsonl(root / "runs" / "eval" / "trial-evolved" / "episodes.jsonl", trial, [*CORRUPT_LINES, *odd_rows])
    with (root / "runs" / "eval" / "trial-evolved" / "episodes.jsonl").open("ab") as f:
        f.write(torn)  # a kill mid-write leaves a torn last line

    mixed = [r for pair in zip(rows["golden"], rows["trial"]) for r in pair]
    _jsonl(root / "runs" / "grpo" / "rollouts" / "step-00001.jsonl", rollout_rows(mixed, 1))
    _jsonl(root / "runs" / "grpo" / "rollouts" / "step-00002.jsonl", rollout_rows(mixed[2:], 2))

    _jsonl(root / "outside" / "episodes.jsonl", rows["golden"][:1])
    (root / "runs" / "escape").symlink_to(root / "outside", target_is_directory=True)
    (root / "runs" / "leak").mkdir()
    (root / "runs" / "leak" / "episodes.jsonl").symlink_to(root / "outside" / "episodes.jsonl")  # a file linking out
    return root
