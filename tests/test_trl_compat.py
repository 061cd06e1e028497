"""TRL's private API as labkit/trl_compat.py uses it: every name still there, taking what the lab passes.

A failure here means the installed TRL changed a private name the lab relies on;
labkit/trl_compat.py is the one place to update. Fast: it reads classes,
signatures and source, and loads no model.
"""

import inspect
import re
import typing
from pathlib import Path

import pytest
import trl
from trl import GRPOTrainer, SFTTrainer
from trl.trainer import utils as trl_utils

from labkit.trl_compat import CHECKED_TRL_VERSION, fused_logprob_kernel_available

ROOT = Path(__file__).resolve().parent.parent
UPDATE = "labkit/trl_compat.py is the one place that uses it: update it there (and the list in its docstring)."
PRIVATE_NAMES = [
    "_ChunkedLogProbFunction",
    "_generate_and_score_completions",
    "_get_per_token_logps_and_entropies",
    "_log_metric",
    "_metrics",
]

# What the lab calls: where TRL defines it, its name, the
# parameters the lab passes in order, and those it passes by name.
CALLED = [
    (GRPOTrainer, "_generate_and_score_completions", ["inputs"], []),
    (
        GRPOTrainer,
        "_get_per_token_logps_and_entropies",
        ["model", "input_ids", "attention_mask", "logits_to_keep"],
        ["batch_size", "compute_entropy"],
    ),
    (GRPOTrainer, "_log_metric", ["name", "value"], []),
    (trl_utils, "selective_log_softmax_and_entropy", ["logits", "index"], ["entropy_requires_grad", "temperature"]),
]


def changed(what: str) -> str:
    return f"TRL {trl.__version__} changed {what}. {UPDATE}"


def test_the_installed_trl_is_the_pinned_one_trl_compat_was_checked_against():
    pin = re.search(r'^\s*"trl([=<>!~][^"]*)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert pin and pin.group(1) == f"=={CHECKED_TRL_VERSION}", (
        f"pyproject.toml pins trl{pin.group(1) if pin else ' (no pin found)'}, "
        "but labkit/trl_compat.py was checked against "
        f"TRL {CHECKED_TRL_VERSION}: recheck its private names and set CHECKED_TRL_VERSION there."
    )
    assert trl.__version__ == CHECKED_TRL_VERSION, (
        f"TRL {trl.__version__} is installed, but labkit/trl_compat.py was checked against {CHECKED_TRL_VERSION}: "
        "run this file against it and set CHECKED_TRL_VERSION there."
    )


@pytest.mark.parametrize("owner, name, positional, keywords", CALLED, ids=[name for _, name, _, _ in CALLED])
def test_each_private_function_takes_what_the_lab_passes(owner, name, positional, keywords):
    where = f"{owner.__name__}.{name}"
    assert hasattr(owner, name), changed(f"{where}: it is gone")
    parameters = list(inspect.signature(getattr(owner, name)).parameters)
    if inspect.isclass(owner):
        parameters = parameters[1:]  # self
    assert parameters[: len(positional)] == positional, changed(
        f"{where}: its leading parameters are {parameters[: len(positional)]}, "
        f"the lab passes {positional} in that order"
    )
    missing = [k for k in keywords if k not in parameters]
    assert not missing, changed(f"{where}: it no longer takes {missing}")


def test_per_token_logps_still_returns_logps_entropies_and_aux_loss():
    signature = inspect.signature(GRPOTrainer._get_per_token_logps_and_entropies, eval_str=True)
    returned = typing.get_args(signature.return_annotation)
    assert len(returned) == 3, changed(
        "GRPOTrainer._get_per_token_logps_and_entropies: it returns "
        f"{signature.return_annotation}, not (logps, entropies, aux_loss)"
    )


def test_scored_batches_still_carry_their_advantages():
    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    assert '"advantages":' in source, changed(
        "GRPOTrainer._generate_and_score_completions: its output no longer has 'advantages'"
    )


def test_the_fused_kernel_flag_is_still_there():
    assert hasattr(trl_utils, "_ChunkedLogProbFunction"), changed(
        "trl.trainer.utils._ChunkedLogProbFunction: it is gone"
    )
    assert isinstance(fused_logprob_kernel_available(), bool)


def test_sft_metrics_are_still_lists_that_log_averages():
    """``_metrics`` is set in ``__init__``, so read the source rather than build a trainer (which needs a model)."""
    init = "".join(
        inspect.getsource(SFTTrainer.__init__).split()
    )  # without whitespace, so formatting changes don't count
    assert 'self._metrics={"train":defaultdict(list),"eval":defaultdict(list)}' in init, changed(
        "SFTTrainer._metrics: __init__ no longer sets it to {mode: defaultdict(list)}"
    )
    assert "self._metrics[mode]" in inspect.getsource(SFTTrainer.log), changed(
        "SFTTrainer._metrics: SFTTrainer.log no longer averages it"
    )


def test_only_trl_compat_spells_trl_private_names():
    spelled = re.compile(r"\b(" + "|".join(PRIVATE_NAMES) + r")\b")
    mine = {ROOT / "labkit" / "trl_compat.py", Path(__file__).resolve()}
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("labkit", "tests")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path not in mine
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if spelled.search(line)
    ]
    assert not offenders, f"TRL's private names belong in labkit/trl_compat.py only; found at {offenders}"
