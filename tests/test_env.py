import json
import time

import pytest

from labkit.env import Answer, EnvConfig, Invalid, ToolCall, ToolEnv, serialize
from labkit.tasks import Task
from labkit.toolset import ErrorKind

TOOLS = ["echo", "add_numbers", "hang", "crash", "reject", "flood", "odd_output", "escape", "read_secret"]


def make_task(**overrides):
    row = dict(id="t1", query="Echo hello.", tools=TOOLS, answer="hello", check="exact")
    row.update(overrides)
    return Task(**row)


@pytest.fixture
def env(misbehaving_catalog):
    env = ToolEnv(misbehaving_catalog, EnvConfig(timeout_s=0.3, max_observation_chars=200))
    env.reset(make_task())
    yield env
    env.close()


def error_of(result):
    assert not result.observation.ok
    payload = json.loads(result.observation.content)
    assert payload["error"]["type"] == result.observation.error.value
    return result.observation.error, payload["error"]["message"]


def test_a_good_call_returns_json(env):
    result = env.step(ToolCall("add_numbers", {"a": 2, "b": 0.5}, phase="trial"))
    assert result.observation.ok and json.loads(result.observation.content) == 2.5
    assert env.trajectory.steps[-1].phase == "trial"


@pytest.mark.parametrize(
    "call, kind, needle",
    [
        (ToolCall("nope", {}), ErrorKind.UNKNOWN_TOOL, "Available tools: echo"),
        (ToolCall(None, {}), ErrorKind.UNKNOWN_TOOL, "no tool named"),
        (ToolCall("echo", "{not json"), ErrorKind.MALFORMED_ARGUMENTS, "not valid JSON"),
        (ToolCall("echo", [1, 2]), ErrorKind.MALFORMED_ARGUMENTS, "must be a JSON object"),
        (ToolCall("echo", {"txt": "hi"}), ErrorKind.UNKNOWN_PARAMETER, "unexpected parameter 'txt'"),
        (ToolCall("echo", {}), ErrorKind.MISSING_PARAMETER, "missing required parameter 'text' (string)"),
        (ToolCall("add_numbers", {"a": "2"}), ErrorKind.WRONG_TYPE, "'a' must be integer, got string"),
        (ToolCall("add_numbers", {"a": True}), ErrorKind.WRONG_TYPE, "must be integer, got boolean"),
        (ToolCall("crash", {"reason": "x"}), ErrorKind.TOOL_EXCEPTION, "RuntimeError: internal bug: x"),
        (ToolCall("reject", {"value": "v"}), ErrorKind.INVALID_VALUE, "is not accepted"),
        (Invalid(raw="<call>garbage", error="no tool call found"), ErrorKind.BAD_FORMAT, "no tool call found"),
    ],
)
def test_bad_calls_become_typed_errors(env, call, kind, needle):
    got_kind, message = error_of(env.step(call))
    assert got_kind is kind
    assert needle in message


def test_json_string_arguments_are_accepted(env):
    assert env.step(ToolCall("echo", '{"text": "hi"}')).observation.content == '"hi"'


def test_a_hanging_tool_times_out_and_the_next_call_works(env):
    start = time.perf_counter()
    kind, message = error_of(env.step(ToolCall("hang", {"seconds": 30})))
    assert kind is ErrorKind.TIMEOUT and "0.3 s" in message
    assert time.perf_counter() - start < 2.0
    assert env.step(ToolCall("echo", {"text": "still here"})).observation.ok


def test_huge_output_is_truncated(env):
    obs = env.step(ToolCall("flood", {"size": 100_000})).observation
    assert obs.ok and obs.truncated
    assert len(obs.content) < 260 and "truncated" in obs.content


@pytest.mark.parametrize("kind", ["set", "bytes", "object", "nan", "cycle", "unprintable", "huge_int", "deep"])
def test_non_json_output_is_serialised(env, kind):
    obs = env.step(ToolCall("odd_output", {"kind": kind})).observation
    assert obs.ok and not obs.truncated
    json.loads(obs.content)


def test_serialize_sorts_sets_and_reports_truncation():
    assert serialize({3, 1, 2}, 100) == ("[1, 2, 3]", False)
    text, cut = serialize("y" * 50, 10)
    assert cut and text.startswith('"yyyyyyyyy') and "truncated 42 characters" in text


def test_answer_ends_the_episode_and_is_checked(env):
    result = env.step(Answer("Hello"))
    assert result.done and result.reward == 1.0
    assert env.trajectory.success and env.trajectory.end_reason == "answered"
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step(Answer("again"))


def test_wrong_answer_scores_zero(env):
    result = env.step(Answer("goodbye"))
    assert result.done and result.reward == 0.0 and not env.trajectory.success


def test_call_budget(misbehaving_catalog):
    env = ToolEnv(misbehaving_catalog, EnvConfig(max_calls=2, max_turns=10))
    env.reset(make_task())
    for _ in range(2):
        assert not env.step(ToolCall("echo", {"text": "a"})).done
    result = env.step(ToolCall("echo", {"text": "a"}))
    assert result.done and result.observation.error is ErrorKind.BUDGET_EXHAUSTED
    assert env.trajectory.end_reason == "budget_calls" and env.trajectory.n_calls == 3


def test_turn_budget_counts_invalid_turns(misbehaving_catalog):
    env = ToolEnv(misbehaving_catalog, EnvConfig(max_turns=3))
    env.reset(make_task())
    results = [env.step(Invalid("??", "no action")) for _ in range(3)]
    assert [r.done for r in results] == [False, False, True]
    assert env.trajectory.end_reason == "budget_turns"


def test_token_budget(misbehaving_catalog):
    env = ToolEnv(misbehaving_catalog, EnvConfig(max_tokens=100))
    env.reset(make_task())
    assert not env.step(ToolCall("echo", {"text": "a"}, n_tokens=60)).done
    assert env.step(ToolCall("echo", {"text": "a"}, n_tokens=60)).done
    assert env.trajectory.end_reason == "budget_tokens" and env.trajectory.n_tokens == 120


def test_step_before_reset_is_a_clear_error(misbehaving_catalog):
    with pytest.raises(RuntimeError, match="reset"):
        ToolEnv(misbehaving_catalog).step(Answer("x"))


@pytest.mark.parametrize("how", ["exit", "interrupt", "generator_exit"])
def test_a_tool_cannot_end_the_program(env, how):
    kind, message = error_of(env.step(ToolCall("escape", {"how": how})))
    assert kind is ErrorKind.TOOL_EXCEPTION and "escape failed: " in message
    assert env.step(ToolCall("echo", {"text": "still here"})).observation.ok


def test_the_users_ctrl_c_still_stops_a_waiting_step(misbehaving_catalog):
    import signal
    import threading

    env = ToolEnv(misbehaving_catalog, EnvConfig(timeout_s=20))  # only the Ctrl-C can end this step soon
    env.reset(make_task())
    # Python's own Ctrl-C handler, as in a learner's session: a library loaded by an earlier test may have
    # left its own SIGINT handler behind, which would turn the signal into something other than the user's Ctrl-C.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Timer(0.1, signal.pthread_kill, (threading.get_ident(), signal.SIGINT)).start()
        start = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            env.step(ToolCall("hang", {"seconds": 60}))
        assert time.perf_counter() - start < 10
    finally:
        signal.signal(signal.SIGINT, previous)
        env.close()


def test_serializing_the_result_is_bounded_by_the_timeout(env):
    start = time.perf_counter()
    kind, _ = error_of(env.step(ToolCall("odd_output", {"kind": "slow_repr"})))
    assert kind is ErrorKind.TIMEOUT and time.perf_counter() - start < 2.0


def test_timed_out_busy_tools_do_not_pile_up_threads(env):
    import threading

    before = threading.active_count()
    for _ in range(3):
        assert error_of(env.step(ToolCall("escape", {"how": "spin"})))[0] is ErrorKind.TIMEOUT
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() <= before


def test_error_observations_are_capped_like_output(env):
    observation = env.step(ToolCall("echo", {"x" * 1_000_000: 1})).observation
    assert observation.error is ErrorKind.UNKNOWN_PARAMETER and len(observation.content) < 300
    assert "truncated" in json.loads(observation.content)["error"]["message"]


def test_lone_surrogates_are_replaced_so_the_episode_can_be_saved(env, tmp_path):
    from labkit.data import append_rows, read_rows, trajectory_row, write_dataset

    env.step(ToolCall("echo", {"text": "\ud83d"}, thought="\udc00"))
    env.step(ToolCall("echo", '{"text": "\\ud83d"}'))
    env.step(ToolCall("odd_output", {"kind": "surrogate"}))
    env.step(Invalid("\ud83d", "\ud83d"))
    env.step(Answer("\ud83d\ude00 \ud83d"))
    row = trajectory_row(env.trajectory, "test")
    append_rows(tmp_path / "episodes.jsonl", [row])
    write_dataset([row], tmp_path / "traces", "card")
    assert "\ufffd" in next(read_rows(tmp_path / "episodes.jsonl"))["messages"][3]["content"]
    assert env.trajectory.answer == "\U0001f600 \ufffd"


def test_actions_holding_unprintable_values_are_recorded_as_text(env):
    class Unprintable:
        def __repr__(self):
            raise RuntimeError("no repr")

        __str__ = __repr__

    huge = 10**4400  # too many digits for str()
    for action in (ToolCall(Unprintable(), {}), ToolCall("echo", {"text": Unprintable()}), ToolCall(huge, {}),
                   ToolCall("echo", {"text": huge}), Unprintable(), Answer(Unprintable())):  # fmt: skip
        result = env.step(action)
        assert result.observation is None or result.observation.ok or isinstance(result.observation.error, ErrorKind)
    assert (
        json.loads(json.dumps([step.action.__dict__ for step in env.trajectory.steps]))[0]["name"]
        == "<unprintable Unprintable>"
    )


def test_the_labs_own_secrets_never_reach_an_observation(misbehaving_catalog, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-123")
    env = ToolEnv(misbehaving_catalog, secrets=("given-in-code-456",))
    env.reset(make_task())
    assert "sk-test" not in env.step(ToolCall("read_secret", {"name": "OPENAI_API_KEY"})).observation.content
    assert "456" not in env.step(ToolCall("echo", {"text": "key given-in-code-456"})).observation.content
    env.close()
