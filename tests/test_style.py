"""House style: ruff's formatter and linter (configured in pyproject.toml) pass on the lab's code."""

import subprocess
import sys
from pathlib import Path

LAB = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).with_name("ruff")  # the pinned one `make setup` installs beside pytest
PATHS = ("labkit", "apps", "bench", "tests")


def ruff(*args: str) -> subprocess.CompletedProcess:
    assert RUFF.is_file(), f"ruff is missing from {RUFF.parent}: run `make setup` (it is a dev dependency)"
    return subprocess.run([str(RUFF), *args, *PATHS], cwd=LAB, capture_output=True, text=True)


def test_the_code_is_formatted():
    result = ruff("format", "--check")
    assert result.returncode == 0, f"run `.venv/bin/ruff format {' '.join(PATHS)}`:\n{result.stdout}{result.stderr}"


def test_the_linter_finds_nothing():
    result = ruff("check")
    assert result.returncode == 0, f"`.venv/bin/ruff check {' '.join(PATHS)}` finds:\n{result.stdout}{result.stderr}"
