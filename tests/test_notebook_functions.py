"""Functions a notebook defines for the learner to read agree with the labkit code that does the work.

A notebook file starts with a digit, so it is imported from its path. Importing it runs no cell: only
``import marimo``, the ``App`` and the notebook's top-level ``@app.function`` definitions.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from labkit.rewards import group_advantages

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def import_notebook(filename: str):
    spec = importlib.util.spec_from_file_location(f"notebook_{Path(filename).stem}", NOTEBOOKS / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def grpo_advantages():
    return import_notebook("04_rl_grpo.py").grpo_advantages


@pytest.mark.parametrize(
    "rewards",
    [
        [1.0, 0.0, 0.0, 0.0],
        [1.0, 1.0, 0.0, 0.0],
        [1.0, 0.2, 0.2, -0.5],
        [1.45, 0.95, -0.3, 0.4, 2.1, -1.0, 0.0, 0.7],
        [0.3, 0.30000001],  # a nearly equal pair: the 1e-4 keeps the advantages small
        [-2.0, 5.5],
    ],
)
def test_notebook_04s_advantage_is_the_trainers(grpo_advantages, rewards):
    assert np.allclose(grpo_advantages(rewards), group_advantages(rewards), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rewards", [[0.0, 0.0, 0.0, 0.0], [0.7, 0.7], [-1.25] * 8])
def test_a_group_whose_episodes_all_score_the_same_has_no_advantage(grpo_advantages, rewards):
    assert grpo_advantages(rewards) == [0.0] * len(rewards)
    assert np.array_equal(group_advantages(rewards), np.zeros(len(rewards)))


@pytest.mark.parametrize("rewards", [[0.0], [1.0], [-0.4]])
def test_a_group_of_one_has_no_advantage(grpo_advantages, rewards):
    assert grpo_advantages(rewards) == [0.0]
    assert np.array_equal(group_advantages(rewards), [0.0])
