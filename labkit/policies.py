"""One way to name a policy across the lab: ``load_policy("teacher:trial")``, ``load_policy("runs/sft")``, ...

Scripted teachers, the random baseline and API endpoints act one episode at a
time through :func:`labkit.env.run_episode`. A model (``tiny``,
``smollm2-135m``, a hub id, a checkpoint or adapter folder) comes back as a
:class:`ModelPolicy`, which carries the loaded model for the batched rollout
engine (:mod:`labkit.rollout`) instead of acting turn by turn.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.env import Action, Answer, Observation, Policy, ToolCall
from labkit.models import EMBEDDED_NAME, TINY_NAME, LoadedModel, load_model
from labkit.tasks import Task
from labkit.teachers.scripted import GoldenTeacher, RecoverTeacher, TrialTeacher, format_answer

TEACHERS = {"trial": TrialTeacher, "recover": RecoverTeacher, "golden": GoldenTeacher}
OPENAI_PREFIX = "openai:"
OPENAI_EXAMPLE = "openai:gpt-4o-mini@https://api.openai.com/v1"

SPEC_FORMS = (
    ("teacher:trial", "the scripted trial-and-execution teacher"),
    ("teacher:recover", "the scripted teacher without trials: documented calls, fixed from their errors"),
    ("teacher:golden", "the scripted golden baseline: the documented calls, no trials"),
    ("random", "random valid-looking calls to documented tools (a floor)"),
    (
        "openai:MODEL@BASE_URL",
        f"an OpenAI-compatible endpoint, e.g. {OPENAI_EXAMPLE}; key from LABKIT_LLM_API_KEY or OPENAI_API_KEY",
    ),
    (f"{TINY_NAME} | {EMBEDDED_NAME}", "the lab's random tiny model, or the embedded SmolLM2-135M-Instruct"),
    ("HUB_ID | FOLDER", "a hub model, a merged checkpoint folder, or a LoRA adapter folder (a run's output)"),
)


SCRIPTED_POLICIES = ("teacher:", "random")  # policies that need no model: they evaluate in moments


def is_model_policy(policy: str) -> bool:
    """Whether a policy spec names a model (played by the rollout engine) rather than a scripted policy."""
    return not policy.startswith(SCRIPTED_POLICIES)


class PolicySpecError(ValueError):
    """A policy spec that names no policy, with the forms that do."""


def describe_policy_specs() -> str:
    """The accepted policy specs, one per line, for CLI help and error messages."""
    width = max(len(form) for form, _ in SPEC_FORMS)
    return "\n".join(f"  {form:<{width}}  {meaning}" for form, meaning in SPEC_FORMS)


def _spec_error(message: str) -> PolicySpecError:
    return PolicySpecError(f"{message}\nAccepted policies:\n{describe_policy_specs()}")


@dataclass
class ModelPolicy:
    """A model to generate with through the batched rollout engine (``labkit.rollout.rollout_batch``)."""

    loaded: LoadedModel

    @property
    def name(self) -> str:
        return self.loaded.name


def load_policy(spec: str, profile: str = "cpu", seed: int = 0) -> Policy | ModelPolicy:
    """The policy a spec names (see :func:`describe_policy_specs`); its ``.name`` is the spec.

    Raises:
        PolicySpecError: the spec has no accepted form.
        labkit.models.ModelNotAvailableError: it names a model that is not installed or cached.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise _spec_error(f"no policy named (got {spec!r})")
    spec = spec.strip()
    kind, colon, rest = spec.partition(":")
    if kind == "teacher":
        if rest not in TEACHERS:
            raise _spec_error(f"unknown teacher {rest!r} in {spec!r}")
        return GoldenTeacher() if rest == "golden" else TEACHERS[rest](seed=seed)
    if kind == "openai":
        return _openai_policy(rest)
    if spec == "random":
        return RandomPolicy(seed)
    if spec in TEACHERS:  # would otherwise be looked up as a hub id
        raise _spec_error(f"{spec!r} names no policy; did you mean 'teacher:{spec}'?")
    if colon and not Path(spec).expanduser().exists():  # an unknown scheme: hub ids have no "x:" prefix
        raise _spec_error(f"unknown policy {spec!r}")
    return ModelPolicy(load_model(spec, profile=profile))


def _openai_policy(rest: str) -> Policy:
    from labkit.teachers.llm import LLMConfigError, LLMTeacher, LLMTeacherConfig, display_url

    # The first "@" ends the model: a URL may carry "user:password@host" after it.
    model, at, base_url = rest.partition("@")
    if not at or not model.strip() or not base_url.strip():
        raise PolicySpecError(
            f"an openai spec needs a model and a base URL, as openai:MODEL@BASE_URL, e.g. {OPENAI_EXAMPLE} "
            f"or openai:runs/serve/smollm2@http://127.0.0.1:8000/v1 (got 'openai:{model}{at}{display_url(base_url)}')"
        )
    try:
        config = LLMTeacherConfig.from_env(base_url.strip(), model.strip())
    except LLMConfigError as exc:
        raise PolicySpecError(f"openai:{model}@{display_url(base_url)}: {exc}") from None
    teacher = LLMTeacher(config)
    teacher.name = f"openai:{config.model}@{display_url(config.base_url)}"  # never a password from the URL
    return teacher


# ----------------------------------------------------------------------------- the random baseline


WORDS = ("alpha", "Berlin", "blue", "Japan", "river", "seven", "table", "USD")
DOC_EXAMPLE = re.compile(r"e\.g\.\s*\"?([^\",;()]+?)\"?\s*(?:$|[,;()]|\.$)")


def _doc_example(spec: dict) -> str | None:
    """The value a parameter's docs give as an example (``"Country name, e.g. Japan"`` -> ``"Japan"``)."""
    match = DOC_EXAMPLE.search(str(spec.get("description", "")))
    return match.group(1).strip() if match else None


def random_value(spec: dict, rng: random.Random) -> Any:
    """A random value of a parameter's documented type."""
    if spec.get("enum"):
        return rng.choice(spec["enum"])
    kind = spec.get("type")
    if isinstance(kind, list):  # e.g. ["string", "null"]
        kind = next((k for k in kind if k != "null"), None)
    if kind == "integer":
        return rng.randint(0, 10)
    if kind == "number":
        return round(rng.uniform(0, 10), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        items = spec.get("items") if isinstance(spec.get("items"), dict) else {"type": "string"}
        return [random_value(items, rng) for _ in range(rng.randint(1, 3))]
    return _doc_example(spec) or rng.choice(WORDS)  # a string, or a type the docs do not say


def random_arguments(function: dict, rng: random.Random) -> dict:
    """Every documented required parameter of ``function`` with a random value of its type."""
    parameters = function.get("parameters") or {}
    properties = parameters.get("properties") or {}
    return {name: random_value(properties.get(name) or {}, rng) for name in parameters.get("required") or []}


def first_scalar(value: Any) -> Any:
    """The first string, number or boolean in a JSON value, depth first; ``None`` when there is none."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return next((found for item in value if (found := first_scalar(item)) is not None), None)
    return value


class RandomPolicy:
    """A floor to compare against: 1-2 random documented tools with random well-typed arguments, then a guess.

    The guess is the first scalar of the last successful result. Everything is
    drawn from ``(seed, task id)``, so a rerun makes the same calls.
    """

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def reset(self, task: Task, docs: list[dict]) -> None:
        rng = random.Random(f"random-policy:{self.seed}:{task.id}")
        functions = [d["function"] for d in docs]
        picked = rng.sample(functions, k=min(len(functions), rng.randint(1, 2)))
        self.calls = [
            ToolCall(f["name"], random_arguments(f, rng), "execution", f"Trying {f['name']}.") for f in picked
        ]
        self.guess: Any = None

    def act(self, observation: Observation | None) -> Action:
        if observation is not None and observation.ok and not observation.truncated:
            self.guess = first_scalar(json.loads(observation.content))
        if self.calls:
            return self.calls.pop(0)
        return Answer("unknown" if self.guess is None else format_answer(self.guess))


# ----------------------------------------------------------------------------- reward hackers
#
# Three policies that game an episode reward instead of solving the task, crafted on purpose:
# each is what a GRPO policy drifts towards when a reward pays for the wrong thing
# (``labkit.rewards`` guards against all three; notebook 04 shows them with guards on and off).


class GuessingPolicy:
    """Answers at once, without a single tool call.

    No call can fail and no turn is wasted, so a reward that only punishes failed calls
    and long episodes pays it more than an honest agent whose calls fail on changed tools.
    The ``no_call`` guard is there for it.
    """

    name = "hack:guess"

    def __init__(self, guess: str = "42"):
        self.guess = guess

    def reset(self, task: Task, docs: list[dict]) -> None:
        pass

    def act(self, observation: Observation | None) -> Action:
        return Answer(self.guess)


class TrialFarmingPolicy:
    """Calls the first documented tool as a trial, with no arguments, until the turn budget runs out.

    Failed trials never count as execution errors, so a reward that punishes only failed
    *execution* calls leaves trials free. The ``trial_overflow`` guard is there for it.
    """

    name = "hack:trial-farm"

    def reset(self, task: Task, docs: list[dict]) -> None:
        self.tool = docs[0]["function"]["name"]

    def act(self, observation: Observation | None) -> Action:
        return ToolCall(self.tool, {}, phase="trial")


class RepeatingFailurePolicy:
    """Sends the same failing call (the first documented tool, no arguments) again and again.

    It ignores what the error says, the opposite of the habit the lab teaches. The
    ``repeated_failure`` guard is there for it.
    """

    name = "hack:repeat"

    def reset(self, task: Task, docs: list[dict]) -> None:
        self.tool = docs[0]["function"]["name"]

    def act(self, observation: Observation | None) -> Action:
        return ToolCall(self.tool, {}, phase="execution")


REWARD_HACKERS = (GuessingPolicy, TrialFarmingPolicy, RepeatingFailurePolicy)
