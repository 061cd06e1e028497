"""The Berkeley Function Calling Leaderboard (BFCL): any policy on ``simple_python`` and ``multiple``.

Data and grading come from the PyPI package ``bfcl-eval`` (pinned to
:data:`BFCL_VERSION`): its question and possible-answer files, and its own AST
checker (``bfcl_eval.eval_checker.ast_eval.ast_checker.ast_checker``). Nothing
of BFCL is copied here; this module only turns BFCL's function docs into the
lab's tool schemas, asks the model, reads its ``<tool_call>`` with
:func:`labkit.protocol.parse_turn`, and hands the call to the official checker.

Isolation. ``bfcl-eval`` pins about 150 packages (numpy 1.26, filelock 3.20,
every vendor SDK, sentence-transformers with a CUDA torch): installing it into
the lab's environment would downgrade the lab's stack. :func:`ensure_bfcl`
therefore runs ``pip install --no-deps --target <cache>/bfcl-eval-<version>``
(about 1 s, 14 MB), which unpacks the wheel and nothing else, and the checker is
imported with that folder on ``sys.path``. The checker needs only the standard
library plus one module of its own package that it uses for a single lookup:
``bfcl_eval.constants.model_config.MODEL_CONFIG_MAPPING``, BFCL's registry of
model handlers, which imports every vendor SDK. The checker asks it one thing,
whether the model's API renamed dotted function names (``math.factorial`` to
``math_factorial``). The lab's tools keep their names as written, so that
module is replaced, before the import, by a stand-in that answers "no" for
every model. Everything else (data files, checker, type converters) is
bfcl-eval's own code, unmodified.

Longer than the lab's ~450 lines per module: loading BFCL's files, turning its docs into the lab's tools,
grading with its checker and the report are one adapter, each part used only by the others.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from labkit import protocol
from labkit.env import Answer, Invalid, ToolCall

BFCL_VERSION = "2026.3.23"
BFCL_PACKAGE = f"bfcl-eval=={BFCL_VERSION}"
DATA_PREFIX = "BFCL_v4"  # the file names' version prefix in this bfcl-eval release
CATEGORIES = ("simple_python", "multiple")
MARKER_NAME = "labkit-complete.json"  # written last, before the folder is renamed into place
MODEL_NAME = "labkit"  # what the checker is told; only used for the dotted-name lookup (see module docs)
PIP_TIMEOUT_S = 600

NO_CALL = "labkit:no_call"  # the output held no tool call at all (a plain answer, or nothing readable)
DECODER_FAILED = "ast_decoder:decoder_failed"  # BFCL's names for the same failures in its own runner
WRONG_FORMAT = "ast_decoder:decoder_wrong_output_format"
CHECKER_CRASHED = "labkit:checker_exception"


class BFCLNotAvailableError(RuntimeError):
    """bfcl-eval is not in the cache and could not be installed (no pip, or no route to PyPI)."""


# ----------------------------------------------------------------------------- install (isolated)


def bfcl_dir(cache: Path | None = None) -> Path:
    """Where the pinned bfcl-eval lives: ``<labkit cache root>/bfcl-eval-<version>``."""
    from labkit.models import cache_root

    return (Path(cache) if cache is not None else cache_root()) / f"bfcl-eval-{BFCL_VERSION}"


def ensure_bfcl(cache: Path | None = None) -> Path:
    """Install the pinned bfcl-eval, without its dependencies, into the labkit cache once; return its folder.

    The folder is built in a temporary sibling and renamed into place after a
    marker file is written, so a killed install never leaves a half-written
    folder. Later calls return at once, with no network.

    Raises:
        BFCLNotAvailableError: when it is not installed and pip fails (offline, no pip).
    """
    target = bfcl_dir(cache)
    if (target / MARKER_NAME).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input", "--disable-pip-version-check",
               "--quiet", "--target", str(building), BFCL_PACKAGE]  # fmt: skip
    started = time.perf_counter()
    try:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BFCLNotAvailableError(_install_advice(target, str(exc))) from exc
        if done.returncode != 0 or not (building / "bfcl_eval").is_dir():
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise BFCLNotAvailableError(
                _install_advice(target, " | ".join(detail[-3:]) or f"pip exited {done.returncode}")
            )
        marker = {"package": BFCL_PACKAGE, "seconds": round(time.perf_counter() - started, 1), "command": command[1:]}
        (building / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n")
        building.chmod(0o755)  # mkdtemp makes it private; a shared $LABKIT_CACHE must be readable by all
        if target.exists() and not (target / MARKER_NAME).is_file():
            shutil.rmtree(target, ignore_errors=True)  # an unfinished folder of our own name: replace it
        try:
            os.rename(building, target)
        except OSError:
            if not (target / MARKER_NAME).is_file():  # not a lost race with another process: a real failure
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


def _install_advice(target: Path, detail: str) -> str:
    return (
        f"{BFCL_PACKAGE} is not installed in {target} and pip could not install it ({detail}). "
        f"It needs PyPI once; on a machine that reaches PyPI run "
        f"`python -m pip install --no-deps --target {target} {BFCL_PACKAGE}` and then "
        f"`touch {target / MARKER_NAME}` (or point $LABKIT_CACHE at a cache that has it)."
    )


_CHECKER: dict[str, Any] = {}


class _NoRenaming(dict):
    """Stands in for BFCL's model registry: no model of ours renames dotted function names."""

    def __missing__(self, name: str) -> Any:
        return types.SimpleNamespace(underscore_to_dot=False)


def official_checker(cache: Path | None = None) -> tuple[Any, Any]:
    """``(ast_checker, Language)`` imported from the isolated bfcl-eval (installing it first if needed)."""
    if "ast_checker" not in _CHECKER:
        folder = ensure_bfcl(cache)
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))  # the folder holds bfcl_eval only: nothing else it could shadow
        registry = "bfcl_eval.constants.model_config"
        if registry not in sys.modules:
            stand_in = types.ModuleType(registry, "labkit's stand-in for BFCL's model registry (see labkit.bfcl)")
            stand_in.MODEL_CONFIG_MAPPING = _NoRenaming()
            sys.modules[registry] = stand_in
        checker = importlib.import_module("bfcl_eval.eval_checker.ast_eval.ast_checker")
        enums = importlib.import_module("bfcl_eval.constants.enums")
        _CHECKER.update(ast_checker=checker.ast_checker, Language=enums.Language, file=checker.__file__)
    return _CHECKER["ast_checker"], _CHECKER["Language"]


# ----------------------------------------------------------------------------- data


@dataclass
class BFCLItem:
    """One BFCL test: the user's messages, BFCL's function docs and its possible answers (``ground_truth``)."""

    id: str
    question: list[dict]
    functions: list[dict]
    possible_answer: list[dict]
    category: str


def load_bfcl(category: str, limit: int | None = None, seed: int = 0, cache: Path | None = None) -> list[BFCLItem]:
    """The items of one category, in BFCL's order.

    Args:
        category: ``"simple_python"`` or ``"multiple"``.
        limit: keep a random subset of this size (drawn with ``seed``, so always the
            same one), still in BFCL's order. BFCL files are grouped by topic, so the
            first N items would not be a fair sample.
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown BFCL category {category!r}: labkit evaluates {', '.join(CATEGORIES)}")
    data = ensure_bfcl(cache) / "bfcl_eval" / "data"
    questions = _read_jsonl(data / f"{DATA_PREFIX}_{category}.json")
    answer_rows = _read_jsonl(data / "possible_answer" / f"{DATA_PREFIX}_{category}.json")
    answers = {row["id"]: row["ground_truth"] for row in answer_rows}
    items = [
        BFCLItem(
            row["id"], [m for turn in row["question"] for m in turn], row["function"], answers[row["id"]], category
        )
        for row in questions
    ]
    if limit is not None and limit < len(items):
        import random

        keep = sorted(random.Random(seed).sample(range(len(items)), limit))
        items = [items[i] for i in keep]
    return items


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# BFCL writes parameter types as Python names; the lab's tools are JSON schemas. "any" gets no type at all.
_JSON_TYPES = {"dict": "object", "float": "number", "tuple": "array", "list": "array", "bool": "boolean", "any": None}


def to_tools(functions: list[dict]) -> list[dict]:
    """BFCL function docs as the tool schemas that the lab's chat template renders."""
    return [
        {
            "type": "function",
            "function": {
                "name": f["name"],
                "description": f.get("description", ""),
                "parameters": _schema(f.get("parameters", {})),
            },
        }
        for f in functions
    ]


def _schema(spec: dict) -> dict:
    out: dict = {}
    kind = spec.get("type")
    kind = _JSON_TYPES.get(kind, kind) if isinstance(kind, str) else kind
    if kind:
        out["type"] = kind
    for key in ("description", "enum", "default", "required"):
        if key in spec:
            out[key] = spec[key]
    if isinstance(spec.get("items"), dict):
        out["items"] = _schema(spec["items"])
    if isinstance(spec.get("properties"), dict):
        out["properties"] = {name: _schema(sub) for name, sub in spec["properties"].items()}
    return out


# ----------------------------------------------------------------------------- generation


def bfcl_prompts(tokenizer: Any, items: Sequence[BFCLItem], system: str = protocol.SYSTEM_PROMPT) -> list[str]:
    """Each item as the model sees it: system prompt, the tools, the user's question, an open assistant turn."""
    return [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": system}, *item.question],
            tools=to_tools(item.functions),
            add_generation_prompt=True,
            tokenize=False,
        )
        for item in items
    ]


def bfcl_generate(
    model: Any,
    tokenizer: Any,
    items: Sequence[BFCLItem],
    max_new_tokens: int = 128,
    batch_size: int = 8,
    system: str = protocol.SYSTEM_PROMPT,
    progress: bool = False,
) -> list[str]:
    """One greedy model turn per item, batched with left padding; each text ends before ``<|im_end|>``.

    Items are batched by prompt length (less padding) and returned in the input order.
    """
    import torch

    prompts = bfcl_prompts(tokenizer, items, system)
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    end_id = tokenizer.convert_tokens_to_ids(protocol.END_OF_TURN)
    outputs: list[str] = [""] * len(prompts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    started = time.perf_counter()
    try:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            encoded = tokenizer(
                [prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False
            )
            encoded = encoded.to(model.device)
            with torch.inference_mode():
                generated = model.generate(
                    **encoded,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                    eos_token_id=end_id,
                    pad_token_id=tokenizer.pad_token_id,
                )
            texts = tokenizer.batch_decode(generated[:, encoded["input_ids"].shape[1] :], skip_special_tokens=False)
            for i, text in zip(batch, texts):
                outputs[i] = text.split(protocol.END_OF_TURN, 1)[0]
            if progress:
                done = min(start + batch_size, len(order))
                elapsed = time.perf_counter() - started
                print(f"bfcl: {done}/{len(order)} generated ({elapsed:.0f} s)", file=sys.stderr, flush=True)
    finally:
        tokenizer.padding_side = side
    return outputs


# ----------------------------------------------------------------------------- scoring


@dataclass
class BFCLResult:
    """The official checker's verdict on every item of one category."""

    category: str
    n: int
    correct: int
    accuracy: float
    valid: list[bool]
    error_types: dict[str, int]
    details: list[dict] = field(default_factory=list)  # per item: id, valid, error_type, error, decoded call(s)


def decode_output(text: str) -> tuple[list[dict] | None, str | None, str]:
    """A model turn in BFCL's decoded form ``[{name: {param: value}}, ...]``, or ``(None, error_type, error)``."""
    parsed = protocol.parse_turn(text)
    action = parsed.action
    if isinstance(action, Answer) or (isinstance(action, Invalid) and "no_action" in parsed.problems):
        return None, NO_CALL, "the output holds no <tool_call>"
    if isinstance(action, Invalid):
        return None, DECODER_FAILED, action.error
    assert isinstance(action, ToolCall)
    calls = [(action.name, action.arguments)]
    if "several_calls" in parsed.problems:  # parse_turn keeps the first; BFCL must see them all to count them
        calls = _all_calls(text) or calls
    decoded = []
    for name, arguments in calls:
        if not isinstance(name, str) or not isinstance(arguments, dict):
            return None, WRONG_FORMAT, f"call {name!r} has arguments that are not a JSON object: {arguments!r}"
        decoded.append({name: arguments})
    return decoded, None, ""


def _all_calls(text: str) -> list[tuple[Any, Any]]:
    from transformers.utils.chat_parsing import parse_response

    message = parse_response(text.split(protocol.END_OF_TURN, 1)[0], protocol.RESPONSE_TEMPLATE, prefix="")
    calls = []
    for call in message.get("tool_calls") or []:
        function = call.get("function", call) if isinstance(call, dict) else {}
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError:
                pass
        calls.append((function.get("name"), arguments))
    return calls


def score_bfcl(
    items: Sequence[BFCLItem], outputs: Sequence[str], category: str | None = None, cache: Path | None = None
) -> BFCLResult:
    """Grade each output with BFCL's official AST checker; an output with no tool call is wrong ("no call")."""
    if len(items) != len(outputs):
        raise ValueError(f"{len(items)} items but {len(outputs)} outputs")
    category = category or (items[0].category if items else CATEGORIES[0])
    ast_checker, language = official_checker(cache)
    details = []
    for item, text in zip(items, outputs):
        decoded, error_type, error = decode_output(text)
        if decoded is not None:
            try:
                verdict = ast_checker(
                    item.functions, decoded, item.possible_answer, language.PYTHON, category, MODEL_NAME
                )
            except Exception as exc:  # noqa: BLE001 - odd values can trip the checker; that is a wrong answer
                verdict = {"valid": False, "error_type": CHECKER_CRASHED, "error": [f"{type(exc).__name__}: {exc}"]}
            error_type = None if verdict["valid"] else verdict.get("error_type", "unknown")
            error = "" if verdict["valid"] else "; ".join(map(str, verdict.get("error", [])))
        row = {"id": item.id, "valid": error_type is None, "error_type": error_type, "error": error, "decoded": decoded}
        details.append(row)
    valid = [d["valid"] for d in details]
    correct = sum(valid)
    errors = Counter(d["error_type"] for d in details if d["error_type"])
    accuracy = correct / len(items) if items else float("nan")
    return BFCLResult(category, len(items), correct, accuracy, valid, dict(errors.most_common()), details)


def bootstrap_ci(valid: Sequence[bool], resamples: int = 2000, seed: int = 0) -> list[float]:
    """A 95% percentile-bootstrap interval for the accuracy, resampling items."""
    import numpy as np

    values = np.asarray(valid, dtype=float)
    if values.size == 0:
        return [float("nan"), float("nan")]
    means = values[np.random.default_rng(seed).integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


# ----------------------------------------------------------------------------- evaluate


def model_and_tokenizer(policy: Any) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a pair, a loaded model or policy, or a name for :func:`labkit.models.load_model`
    (``smollm2-135m``, ``tiny``, an adapter or checkpoint folder, a hub id)."""
    if isinstance(policy, (str, Path)):
        from labkit.models import load_model

        policy = load_model(policy)
    policy = getattr(policy, "loaded", policy)  # a labkit.policies.ModelPolicy
    if hasattr(policy, "model") and hasattr(policy, "tokenizer"):  # a labkit.models.LoadedModel
        return policy.model, policy.tokenizer
    model, tokenizer = policy
    return model, tokenizer


def evaluate_bfcl(
    policy: Any,
    categories: Sequence[str] = CATEGORIES,
    limit: int | None = None,
    out: Path | str | None = None,
    seed: int = 0,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    progress: bool = False,
) -> dict:
    """BFCL accuracy per category, with a bootstrap 95% interval over items.

    Args:
        policy: a ``(model, tokenizer)`` pair, a ``LoadedModel`` or ``ModelPolicy``, or a model name
            (see :func:`model_and_tokenizer`).
        limit: items per category (a seeded random subset, see :func:`load_bfcl`); None for all.
        out: a folder for ``bfcl.json`` (the summary) and ``bfcl_items.jsonl`` (every output and verdict).
    """
    ensure_bfcl()  # before loading a model: fail fast when bfcl-eval cannot be had
    model, tokenizer = model_and_tokenizer(policy)
    summary: dict = {"bfcl_eval": BFCL_VERSION, "limit": limit, "seed": seed, "max_new_tokens": max_new_tokens}
    summary["categories"] = {}
    rows = []
    for category in categories:
        items = load_bfcl(category, limit=limit, seed=seed)
        started = time.perf_counter()
        outputs = bfcl_generate(model, tokenizer, items, max_new_tokens, batch_size, progress=progress)
        result = score_bfcl(items, outputs, category)
        summary["categories"][category] = {
            "accuracy": result.accuracy,
            "ci95": bootstrap_ci(result.valid, seed=seed),
            "n": result.n,
            "correct": result.correct,
            "error_types": result.error_types,
            "seconds": round(time.perf_counter() - started, 1),
        }
        rows += [{"category": category, "output": text, **detail} for text, detail in zip(outputs, result.details)]
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "bfcl.json").write_text(json.dumps(summary, indent=2) + "\n")
        with open(folder / "bfcl_items.jsonl", "w") as handle:
            for row in rows:
                handle.write(json.dumps(row, default=str) + "\n")
    return summary
