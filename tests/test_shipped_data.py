"""The data shipped in data/ is exactly what `make data` regenerates, and it is ready to learn from."""

import json
import shlex
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from labkit.ablation import AblationConfig
from labkit.data import load_dataset_dir
from labkit.tasks import generate_tasks, load_tasks, save_tasks
from labkit.teach import TeachConfig, teach

DATA = Path(__file__).parent.parent / "data"
TASK_FILES = {"train": (400, 0), "seen": (200, 1), "evolved": (200, 1), "unseen": (200, 1)}


@pytest.mark.parametrize("split", TASK_FILES)
def test_shipped_tasks_regenerate_byte_for_byte(tmp_path, catalog, split):
    n, seed = TASK_FILES[split]
    fresh = save_tasks(generate_tasks(split, n, seed, catalog=catalog), tmp_path / f"{split}.jsonl")
    assert fresh.read_bytes() == (DATA / "tasks" / f"{split}.jsonl").read_bytes()


@pytest.mark.parametrize("teacher", ["trial", "recover", "golden"])
def test_shipped_trajectories_regenerate_byte_for_byte(tmp_path, teacher):
    config = TeachConfig(teacher=teacher, tasks_file=str(DATA / "tasks" / "train.jsonl"), out=str(tmp_path / teacher))
    fresh = teach(config, progress=False)
    shipped = DATA / "trajectories" / f"{teacher}-train"
    assert (fresh / "data.parquet").read_bytes() == (shipped / "data.parquet").read_bytes()
    assert len(load_dataset_dir(shipped)) == len(load_tasks(DATA / "tasks" / "train.jsonl"))


def test_make_ablation_runs_the_shipped_reports_command_and_ships_its_adapters():
    from labkit.cli import build_parser, config_from_args

    root = DATA.parent
    dry_run = subprocess.run(["make", "-n", "ablation"], cwd=root, capture_output=True, text=True, check=True).stdout
    recipe = dry_run.replace("\\\n", " ").split("labkit ablation", 1)[1].splitlines()[0]
    report = json.loads((root / "reports" / "ablation.json").read_text())["command"]

    def config(arguments: str) -> AblationConfig:
        return config_from_args(AblationConfig, build_parser().parse_args(["ablation", *shlex.split(arguments)]))

    assert config(recipe) == replace(config(report.removeprefix("labkit ablation")), ship="data/adapters")
