"""Throw at least 10,000 random and malformed actions at the
environment: none may crash it, and every episode can be saved."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.data import trajectory_row
from labkit.env import Answer, EnvConfig, Invalid, Observation, StepResult, ToolCall, ToolEnv
from labkit.tasks import generate_tasks
from labkit.tools import load_catalog
from labkit.toolset import ErrorKind

CATALOG = load_catalog()
TASKS = generate_tasks("evolved", 40, seed=9, catalog=CATALOG) + generate_tasks("seen", 20, seed=9, catalog=CATALOG)
ENV = ToolEnv(CATALOG, EnvConfig(max_turns=30, max_calls=30))
ACTIONS_PER_EXAMPLE = 25
EXAMPLES = 170  # 4,250 actions; scripts/fuzz_inputs.py (test_scripts.py) steps the environment too


def texts(max_size: int):
    return st.text(st.characters(exclude_categories=()), max_size=max_size)  # lone surrogates included


names = st.one_of(
    st.sampled_from(sorted(CATALOG.tools) + ["fetch_capital", "get_capital_v2", "get_capital_beta"]),
    texts(30),
    st.none(),
    st.integers(-(10**100), 10**100),
)
json_values = st.recursive(
    # Bounded: hypothesis cannot print a failing example holding an int too long for str(); actions and tool
    # results with such ints have tests of their own (test_env, test_protocol).
    st.none() | st.booleans() | st.integers(-(10**100), 10**100) | st.floats(allow_nan=True) | texts(40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts(10), inner, max_size=4),
    max_leaves=12,
)
param_names = st.sampled_from(sorted({p for t in CATALOG.tools.values() for p in t.parameters.get("properties", {})}))
arguments = st.one_of(
    st.dictionaries(param_names, json_values, max_size=4),
    st.dictionaries(texts(12), json_values, max_size=3),
    texts(60),
    json_values,
    st.builds(lambda d: json.dumps(d), st.dictionaries(param_names, json_values, max_size=3)),
)
actions = st.one_of(
    st.builds(ToolCall, names, arguments, st.sampled_from(["trial", "execution", "", "???"]), texts(20)),
    st.builds(Answer, texts(40)),
    st.builds(Invalid, texts(60), texts(30)),
    st.builds(ToolCall, names, arguments, n_tokens=st.one_of(st.none(), st.integers(-5, 500))),
)


def test_thousands_of_random_actions_never_crash_the_environment():
    sent = 0

    @settings(
        max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None
    )
    @given(
        task_index=st.integers(0, len(TASKS) - 1),
        batch=st.lists(actions, min_size=ACTIONS_PER_EXAMPLE, max_size=ACTIONS_PER_EXAMPLE),
    )
    def episode(task_index, batch):
        nonlocal sent
        ENV.reset(TASKS[task_index])
        for action in batch:
            result = ENV.step(action)
            sent += 1
            assert isinstance(result, StepResult)
            if result.observation is not None:
                assert isinstance(result.observation, Observation)
                assert result.observation.ok or isinstance(result.observation.error, ErrorKind)
                if not result.observation.truncated:
                    json.loads(result.observation.content)
            if result.done:
                json.dumps(trajectory_row(ENV.trajectory, "fuzz"), ensure_ascii=False).encode("utf-8")
                ENV.reset(TASKS[task_index])

    episode()
    assert sent >= 4_000, sent
