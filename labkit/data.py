"""Trajectory datasets: rows in the HF conversational tool-calling format, written atomically.

A row is one episode: ``messages`` (assistant ``tool_calls`` and ``role: "tool"``
results), ``tools`` (the docs the agent saw, as a JSON string, which TRL's
SFTTrainer accepts as is), and metadata columns. Tool-call arguments are stored
as JSON strings so that rows with different tools share one Arrow schema.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from labkit.env import ToolCall, Trajectory
from labkit.protocol import SYSTEM_PROMPT, trajectory_messages
from labkit.toolset import ErrorKind


class DatasetFileError(ValueError):
    """A trajectory file that cannot be read, with what to do about it."""


def _flat_messages(messages: list[dict]) -> list[dict]:
    flat = []
    for message in messages:
        calls = message.get("tool_calls")
        flat.append(
            {
                "role": message["role"],
                "content": message.get("content") or "",
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {
                            "name": c["function"]["name"],
                            "arguments": json.dumps(c["function"]["arguments"], ensure_ascii=False),
                        },
                    }
                    for c in calls
                ]
                if calls
                else None,
                "name": message.get("name"),
                # only where a turn must not be trained on, so datasets without such turns keep their schema
                **({"train": message["train"]} if "train" in message else {}),
            }
        )
    return flat


def recoveries(trajectory: Trajectory) -> int:
    """Failed calls outside the trial phase put right later in the episode.

    A fix is a later successful call of the same tool, or of an undocumented one (where a redirect
    pointed); after calling a tool that is unknown or disabled, a success with any tool is the fix.
    Merely moving on to the next hop is not a recovery. A trial's error is how a probe learns, not
    a mistake, so it is neither counted nor a recovery (the same rule as ``n_errors``).
    """
    documented = {doc["function"]["name"] for doc in trajectory.toolset.docs}
    calls = [
        (s.action.name, s.observation, s.phase)
        for s in trajectory.steps
        if isinstance(s.action, ToolCall) and s.observation
    ]
    switched = {ErrorKind.UNKNOWN_TOOL, ErrorKind.UNAVAILABLE}

    def fixes(name: str, error: ErrorKind, later: str) -> bool:
        return later == name or later not in documented or error in switched

    return sum(
        phase != "trial"
        and not obs.ok
        and any(later_obs.ok and fixes(name, obs.error, later) for later, later_obs, _ in calls[i + 1 :])
        for i, (name, obs, phase) in enumerate(calls)
    )


def trajectory_row(trajectory: Trajectory, policy: str, system: str = SYSTEM_PROMPT) -> dict:
    """One dataset row for one finished episode."""
    task, toolset = trajectory.task, trajectory.toolset
    steps = trajectory.steps
    errors = [s.observation.error.value if s.observation is not None and s.observation.error else "" for s in steps]
    return {
        "messages": _flat_messages(trajectory_messages(trajectory, system)),
        "tools": json.dumps(toolset.docs, ensure_ascii=False),
        "task_id": task.id,
        "query": task.query,
        "split": task.split,
        "level": task.level,
        "evolve_seed": task.evolve_seed,
        "template": task.template,
        "families": list(task.families),
        "hops": task.hops,
        "check": task.check,
        "gold_answer": json.dumps(task.answer, ensure_ascii=False),
        "policy": policy,
        "phases": [s.phase for s in steps],
        "errors": errors,
        "tools_called": [str(s.action.name) if isinstance(s.action, ToolCall) else "" for s in steps],
        "gold_tools": [c.name for c in task.calls],
        "n_trials": sum(s.phase == "trial" for s in steps),
        "n_calls": trajectory.n_calls,
        "n_tokens": trajectory.n_tokens,
        "n_errors": sum(bool(e) and s.phase != "trial" for e, s in zip(errors, steps)),
        "n_recoveries": recoveries(trajectory),
        "answer": trajectory.answer or "",
        "success": trajectory.success,
        "end_reason": trajectory.end_reason,
        "changes": json.dumps([vars(c) for c in toolset.changes], ensure_ascii=False),
        "real_tools": json.dumps([t.real_schema() for t in toolset.tools.values()], ensure_ascii=False),
    }


# ----------------------------------------------------------------------------- JSONL logs (resumable)


def append_rows(path: str | Path, rows: Iterable[dict]) -> None:
    """Append rows and flush them to disk, so a killed run keeps every finished row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_rows(path: str | Path, repair: bool = False) -> Iterator[dict]:
    """Rows of a JSONL log. A torn last line (a kill mid-write) is dropped, and cut off when ``repair``."""
    path = Path(path)
    if not path.exists():
        return
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, torn = lines[:-1], lines[-1]
    for lineno, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.removeprefix(b"\xef\xbb\xbf") if lineno == 1 else line)
        except (ValueError, RecursionError) as exc:  # bad JSON, not UTF-8, too deep, a number of over 4,300 digits
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)[:100]
            raise DatasetFileError(
                f"{path}:{lineno} is not valid JSON ({reason}); delete that line or the file to regenerate it"
            ) from None
        if not isinstance(row, dict):
            raise DatasetFileError(
                f"{path}:{lineno} is not a JSON object; delete that line or the file to regenerate it"
            )
        yield row
    if torn.strip() and repair:
        with path.open("r+b") as f:
            f.truncate(len(data) - len(torn))


# ----------------------------------------------------------------------------- datasets on disk


def write_dataset(rows: list[dict], out_dir: str | Path, card: str) -> Path:
    """Write ``data.parquet`` and a ``README.md`` card into ``out_dir``, replacing it atomically."""
    from datasets import Dataset

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    backup = _restore_backup(out_dir)
    # mkdtemp's names: staging of writes that were killed
    leftover = re.compile(rf"\.{re.escape(out_dir.name)}\.[a-z0-9_]{{8}}")
    for path in out_dir.parent.iterdir():
        if leftover.fullmatch(path.name) or path == backup:
            shutil.rmtree(path, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        Dataset.from_list(rows).to_parquet(str(staging / "data.parquet"))
        (staging / "README.md").write_text(card, encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes folders private; datasets are meant to be shared
        if out_dir.exists():
            out_dir.rename(backup)
            staging.rename(out_dir)
            shutil.rmtree(backup)
        else:
            staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _restore_backup(out_dir: Path) -> Path:
    """The backup name ``write_dataset`` moves the old dataset to; a backup left by a kill before the new one
    took its place is put back first, so the last whole dataset is never lost."""
    backup = out_dir.with_name(f".{out_dir.name}.old")
    if backup.is_dir() and not out_dir.exists():
        backup.rename(out_dir)
    return backup


def dataset_file(path: str | Path) -> Path:
    """The file behind a dataset path: ``data.parquet`` inside a dataset folder, else the file itself."""
    path = Path(path)
    return path / "data.parquet" if path.is_dir() or not path.suffix else path  # a folder, existing or not


def existing_dataset_file(path: str | Path) -> Path:
    """``dataset_file(path)``, which must be there."""
    path = dataset_file(path)
    if not path.is_file():
        raise DatasetFileError(f"no trajectory data at {path}; make it with `labkit teach --out {path.parent}`")
    return path


def dataset_fingerprint(path: str | Path) -> str:
    """sha256 of a dataset's file: run cards record it, and a run folder refuses other data."""
    return hashlib.sha256(existing_dataset_file(path).read_bytes()).hexdigest()


def load_dataset_dir(path: str | Path):
    """A trajectory dataset written by ``write_dataset`` (or any parquet/JSONL file of rows)."""
    import pyarrow
    import pyarrow.parquet as pq
    from datasets import Dataset

    path = existing_dataset_file(path)
    try:
        if path.suffix == ".jsonl":
            return Dataset.from_list(list(read_rows(path)))
        return Dataset(pq.read_table(path))  # read in memory: a zero-row file is an empty dataset, not an error
    except (
        pyarrow.ArrowException,
        OSError,
        TypeError,
        AttributeError,
    ) as exc:  # not parquet, cut short, rows of mixed shapes
        raise DatasetFileError(
            f"{path} cannot be read as trajectories ({str(exc)[:200]}); regenerate it with `labkit teach`"
        ) from exc


def token_lengths(rows: Iterable[dict], tokenizer) -> list[int]:
    """Tokens of each row as a model reads it: the chat template with the row's tools (a JSON string or a list)."""
    lengths = []
    for row in rows:
        tools = json.loads(row["tools"]) if isinstance(row["tools"], str) else row["tools"]
        lengths.append(
            len(
                tokenizer.apply_chat_template(row["messages"], tools=tools, tokenize=True, return_dict=True)[
                    "input_ids"
                ]
            )
        )
    return lengths


def dataset_stats(rows: list[dict], tokenizer=None) -> dict[str, list]:
    """Per-episode numbers of a trajectory dataset, for histograms."""
    stats = {
        "trials per episode": [r["n_trials"] for r in rows],
        "tool calls per episode": [r["n_calls"] for r in rows],
    }
    if tokenizer is not None:
        stats["tokens per trajectory"] = token_lengths(rows, tokenizer)
    return stats
