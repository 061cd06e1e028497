"""Every notebook runs headless at the tiny profile, as `python notebooks/NAME.py` would.

Notebooks 03 and 05 run with `--run`, which presses every button, so their training and evaluation cells run too.
Notebook 04 is opened in a real browser instead (tests/test_notebook_buttons.py), which runs every cell of it and
presses its training button; running it here as well would repeat that.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.py"))
PRESS_EVERY_BUTTON = {"03_sft.py", "05_evaluation.py"}
IN_THE_BROWSER_TEST = {"04_rl_grpo.py"}


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:2] == ["00_welcome.py", "01_tool_world.py"]


@pytest.mark.parametrize("notebook", [n for n in NOTEBOOKS if n.name not in IN_THE_BROWSER_TEST], ids=lambda p: p.name)
def test_notebook_runs_headless(notebook, tmp_path):
    result = subprocess.run(
        [sys.executable, str(notebook), *(["--run"] if notebook.name in PRESS_EVERY_BUTTON else [])],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # the runs a notebook writes land here
        env={**os.environ, "LABKIT_PROFILE": "tiny", "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


def test_marimo_check_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "marimo", "check", *map(str, NOTEBOOKS)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
