"""Policy specs: every form :func:`labkit.policies.load_policy` accepts, and the random baseline."""

from __future__ import annotations

import json

import pytest

from labkit.env import Answer, EnvConfig, ToolCall, ToolEnv, run_episode
from labkit.models import LoadedModel, ModelNotAvailableError
from labkit.policies import (
    ModelPolicy,
    PolicySpecError,
    RandomPolicy,
    describe_policy_specs,
    first_scalar,
    load_policy,
    random_arguments,
)
from labkit.tasks import generate_tasks
from labkit.teachers import GoldenTeacher, TrialTeacher
from labkit.teachers.llm import LLMTeacher


@pytest.fixture(scope="module")
def env(catalog):
    environment = ToolEnv(catalog, EnvConfig())
    yield environment
    environment.close()


# ----------------------------------------------------------------------------- teachers


def test_trial_teacher_spec_solves_episodes(env, catalog):
    policy = load_policy("teacher:trial", seed=3)
    assert isinstance(policy, TrialTeacher) and policy.name == "teacher:trial" and policy.seed == 3
    for task in generate_tasks("evolved", 5, seed=0, catalog=catalog):
        trajectory = run_episode(env, policy, task)
        assert trajectory.success, (task.id, trajectory.answer, task.answer)
        assert trajectory.steps[0].phase == "trial"


def test_golden_teacher_spec_runs_the_tasks_as_given(env, catalog):
    policy = load_policy("teacher:golden")
    assert isinstance(policy, GoldenTeacher) and policy.name == "teacher:golden"
    documented = generate_tasks("seen", 20, seed=0, catalog=catalog)
    evolved = generate_tasks("evolved", 20, seed=0, catalog=catalog)
    assert all(run_episode(env, policy, task).success for task in documented)
    # Nothing maps the tasks back to level 0: on changed tools the documented calls mostly fail.
    assert sum(run_episode(env, policy, task).success for task in evolved) <= 10


# ----------------------------------------------------------------------------- the random baseline


def episode_log(env, policy, tasks) -> str:
    trajectories = [run_episode(env, policy, task) for task in tasks]
    return json.dumps([[repr(step.action) for step in t.steps] for t in trajectories])


def test_random_policy_makes_valid_looking_calls_deterministically(env, catalog):
    tasks = generate_tasks("evolved", 25, seed=1, catalog=catalog) + generate_tasks("seen", 25, seed=1, catalog=catalog)
    policy = load_policy("random", seed=7)
    assert isinstance(policy, RandomPolicy) and policy.name == "random"

    trajectories = [run_episode(env, policy, task) for task in tasks]
    n_ok = 0
    for trajectory in trajectories:
        *calls, answer = [step.action for step in trajectory.steps]
        assert 1 <= len(calls) <= 2 and isinstance(answer, Answer) and answer.text
        documented = {d["function"]["name"]: d["function"] for d in trajectory.toolset.docs}
        for call in calls:
            assert isinstance(call, ToolCall) and call.phase == "execution" and call.name in documented
            assert set(call.arguments) == set(documented[call.name]["parameters"].get("required", []))
        n_ok += sum(step.observation.ok for step in trajectory.steps[:-1])
    assert n_ok >= 10, "doc examples and enums make some random calls go through"
    assert 0 < sum(len(t.steps) - 1 for t in trajectories) - n_ok, "and others fail"

    log = episode_log(env, policy, tasks)
    assert (
        log
        == episode_log(env, load_policy("random", seed=7), tasks)
        != episode_log(env, load_policy("random", seed=8), tasks)
    )


def test_random_arguments_follow_the_documented_types():
    import random

    function = {
        "name": "f",
        "parameters": {
            "properties": {
                "country": {"type": "string", "description": "Country name, e.g. Japan"},
                "word": {"type": "string", "description": "Anything"},
                "unit": {"type": "string", "enum": ["m", "km"]},
                "count": {"type": "integer"},
                "amount": {"type": "number"},
                "exact": {"type": "boolean"},
                "names": {"type": "array", "items": {"type": "string"}},
                "optional": {"type": "integer"},
            },
            "required": ["country", "word", "unit", "count", "amount", "exact", "names"],
        },
    }
    for seed in range(20):
        arguments = random_arguments(function, random.Random(seed))
        assert "optional" not in arguments and arguments["country"] == "Japan"
        assert isinstance(arguments["word"], str) and arguments["word"] and arguments["unit"] in ("m", "km")
        assert (
            type(arguments["count"]) is int
            and isinstance(arguments["amount"], float)
            and type(arguments["exact"]) is bool
        )
        assert arguments["names"] and all(isinstance(name, str) for name in arguments["names"])
    assert random_arguments({"name": "g"}, random.Random(0)) == {}


def test_first_scalar_reads_the_first_leaf():
    assert first_scalar({"country": "Japan", "capital": "Tokyo"}) == "Japan"
    assert first_scalar({"data": [{"value": 2.5}], "unit": "m"}) == 2.5
    assert first_scalar([[], {}, False]) is False
    assert first_scalar({"empty": []}) is None


# ----------------------------------------------------------------------------- endpoints


def test_openai_spec_builds_an_llm_teacher_with_the_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("LABKIT_LLM_API_KEY", "sk-test-secret")
    policy = load_policy("openai:runs/serve/smollm2@http://user:hunter2@127.0.0.1:8000/v1")
    try:
        assert isinstance(policy, LLMTeacher)
        assert policy.config.model == "runs/serve/smollm2"
        assert policy.config.base_url == "http://user:hunter2@127.0.0.1:8000/v1"  # the first "@" ends the model
        assert policy.config.api_key == "sk-test-secret"
        assert policy.name == "openai:runs/serve/smollm2@http://127.0.0.1:8000/v1"
        assert "hunter2" not in policy.name and "sk-test-secret" not in repr(policy)
    finally:
        policy.close()


@pytest.mark.parametrize(
    "spec", ["openai", "openai:", "openai:gpt-4o-mini", "openai:@http://127.0.0.1:8000/v1", "openai:gpt-4o-mini@"]
)
def test_openai_spec_without_model_or_url_explains_the_form(spec):
    with pytest.raises(PolicySpecError) as info:
        load_policy(spec)
    assert "openai:MODEL@BASE_URL" in str(info.value) and "openai:gpt-4o-mini@https://" in str(info.value)


def test_openai_spec_with_a_bad_url_is_a_spec_error_that_hides_passwords():
    with pytest.raises(PolicySpecError, match="http") as info:
        load_policy("openai:gpt-4o-mini@ftp://user:hunter2@example.com")
    assert "hunter2" not in str(info.value)


# ----------------------------------------------------------------------------- models and bad specs


def test_model_specs_give_a_model_policy(tokenizer, tmp_path):
    tiny = load_policy("tiny", profile="tiny")
    assert isinstance(tiny, ModelPolicy) and isinstance(tiny.loaded, LoadedModel) and tiny.name == "tiny"
    assert not tiny.loaded.model.training and len(tiny.loaded.tokenizer) == tiny.loaded.model.config.vocab_size

    folder = tmp_path / "checkpoint"
    tiny.loaded.model.save_pretrained(folder)
    tiny.loaded.tokenizer.save_pretrained(folder)
    from_folder = load_policy(str(folder))
    assert isinstance(from_folder, ModelPolicy) and from_folder.name == str(folder)


def test_an_uncached_hub_model_is_a_typed_error(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotAvailableError, match="not in the Hugging Face cache"):
        load_policy("labkit-tests/no-such-model")


@pytest.mark.parametrize(
    "spec, says",
    [
        ("", "no policy named"),
        ("   ", "no policy named"),
        ("teacher", "unknown teacher"),
        ("teacher:", "unknown teacher"),
        ("teacher:best", "unknown teacher 'best'"),
        ("trial", "did you mean 'teacher:trial'"),
        ("golden", "did you mean 'teacher:golden'"),
        ("anthropic:claude@https://example.com", "unknown policy"),
        ("vllm:qwen", "unknown policy"),
    ],
)
def test_bad_specs_list_the_accepted_forms(spec, says):
    with pytest.raises(PolicySpecError, match=says) as info:
        load_policy(spec)
    assert isinstance(info.value, ValueError)
    assert describe_policy_specs() in str(info.value)


def test_describe_policy_specs_names_every_form():
    text = describe_policy_specs()
    for form in (
        "teacher:trial",
        "teacher:golden",
        "random",
        "openai:MODEL@BASE_URL",
        "tiny",
        "smollm2-135m",
        "HUB_ID",
        "FOLDER",
    ):
        assert form in text
