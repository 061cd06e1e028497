"""A run folder holds one run: the configuration that made it is recorded, and a different one is refused.

``labkit eval``, ``sft`` and ``rl`` resume when their command is run again with the same ``--out``. Run with
another configuration, they would mix two runs in one folder (episodes of one policy under another's metrics,
or a finished card returned for different data), so ``claim_run_folder`` refuses instead and says what to do.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

RUN_CONFIG = "run_config.json"


def normal_path(text: str) -> str:
    """A path as the command line gives it, written the way ``Path`` writes it: ``./runs/x/`` is ``runs/x``."""
    return str(Path(text))


OUT_OPTION = {"required": True, "parse": normal_path}  # the `--out` of a stage that writes one run folder (labkit.cli)


class RunFolderError(FileExistsError):
    """``--out`` already holds a run made with a different configuration."""


def claim_run_folder(out: str | Path, config: dict, command: str) -> None:
    """Record ``config`` (JSON-able) as what ``out`` holds, or raise ``RunFolderError`` if it holds another.

    A folder made before configurations were recorded is adopted as it is.
    """
    out = Path(out)
    path = out / RUN_CONFIG
    config = json.loads(json.dumps(config, default=str))  # compared as it reads back: tuples as lists, paths as text
    if path.is_file():
        try:
            held = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            held = None  # written atomically, so this is someone's edit
        if held is not None and held.get("config") != config:
            theirs = held.get("config") if isinstance(held.get("config"), dict) else {}
            changed = sorted(k for k in config.keys() | theirs.keys() if config.get(k) != theirs.get(k))
            diffs = "; ".join(f"{k}: {theirs.get(k)!r} there, {config.get(k)!r} now" for k in changed[:6])
            raise RunFolderError(
                f"{out} holds another run ({diffs}). To resume that "
                f"run, rerun its command: {held.get('command', '?')}. "
                f"To start this one, choose another --out or delete {out}."
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=out, prefix=f".{RUN_CONFIG}.", delete=False, encoding="utf-8") as f:
        json.dump({"command": command, "config": config}, f, indent=2)
    os.replace(f.name, path)  # atomic: several processes of one run may claim at once


def slug(text: str) -> str:
    """``text`` as a folder or file name: each character but a letter or digit becomes a dash, none at either end."""
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")
