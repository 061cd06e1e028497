"""Every notebook runs headless at the tiny profile, as `python notebooks/NAME.py` would."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.py"))


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:2] == ["00_welcome.py", "01_tool_world.py"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_headless(notebook):
    result = subprocess.run(
        [sys.executable, str(notebook)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LABKIT_PROFILE": "tiny"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


def test_marimo_check_is_clean():
    result = subprocess.run([sys.executable, "-m", "marimo", "check", *map(str, NOTEBOOKS)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
