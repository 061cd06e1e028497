import hashlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.env import Answer, Invalid, ToolCall, ToolEnv, run_episode
from labkit.protocol import (
    CHAT_TEMPLATE,
    MARKUP,
    SYSTEM_PROMPT,
    ParsedTurn,
    assistant_message,
    message_action,
    parse_turn,
    render,
    trajectory_messages,
)
from labkit.tasks import generate_tasks
from labkit.teach import TEACHER_ENV
from labkit.teachers import TrialTeacher

ASSISTANT = "<|im_start|>assistant\n"


def model_side(text: str) -> list[str]:
    """What the model generated in each assistant turn of a rendered conversation."""
    return [part.split("<|im_end|>")[0] for part in text.split(ASSISTANT)[1:]]


def test_render_then_parse_gives_back_every_action(catalog):
    env = ToolEnv(catalog, TEACHER_ENV)
    for task in generate_tasks("evolved", 60, seed=4, catalog=catalog):
        trajectory = run_episode(env, TrialTeacher(seed=3), task)
        text = render(trajectory_messages(trajectory), trajectory.toolset.docs)
        parsed = [parse_turn(turn).action for turn in model_side(text)]
        assert [type(a) for a in parsed] == [type(s.action) for s in trajectory.steps]
        for got, step in zip(parsed, trajectory.steps):
            if isinstance(got, ToolCall):
                assert (got.name, got.arguments, got.phase, got.thought) == (
                    step.action.name,
                    step.action.arguments,
                    step.action.phase,
                    step.action.thought,
                )
            else:
                assert got.text == step.action.text


def test_the_chat_template_is_the_one_every_adapter_was_trained_with():
    """templates/chat.jinja is read into the very string the tokenizers of trained adapters hold: one line, with
    the system prompt written in, byte for byte what it was as a Python string."""
    assert "\n" not in CHAT_TEMPLATE and json.dumps(SYSTEM_PROMPT) in CHAT_TEMPLATE
    assert (
        hashlib.sha256(CHAT_TEMPLATE.encode()).hexdigest()
        == "493525c1c6291bacaae81885ceedc9bdbf4176eb21ea0eca0ef3e4762a62e740"
    )


def test_rendered_tools_are_compact_signatures(catalog):
    text = render(
        [{"role": "user", "content": "hi"}], catalog.schemas(["get_current_weather"]), add_generation_prompt=True
    )
    assert "get_current_weather(city: string, unit?: celsius|fahrenheit): Get the current weather in a city." in text
    assert "  city: City name, e.g. Paris" in text and text.endswith(ASSISTANT)


def test_phases_and_answers_are_explicit_in_the_text():
    assert assistant_message(ToolCall("f", {"a": 1}, "trial", "why"))["content"] == "<trial>why</trial>\n"
    assert assistant_message(ToolCall("f", {}, "execution", "go"))["content"] == "<execute>go</execute>\n"
    assert assistant_message(Answer("Tokyo"))["content"] == "<answer>Tokyo</answer>"


def test_parse_typed_errors_and_format_slips():
    bad_json = parse_turn('<execute>x</execute><tool_call>{"name": "f", "arguments": {oops}}</tool_call>')
    assert isinstance(bad_json.action, Invalid) and bad_json.problems == ["bad_json"]
    rambling = parse_turn("I think the answer might be Paris")
    assert isinstance(rambling.action, Invalid) and "no <tool_call> and no <answer>" in rambling.action.error
    no_phase = parse_turn('<tool_call>{"name": "f", "arguments": {}}</tool_call>')
    assert (
        isinstance(no_phase.action, ToolCall)
        and no_phase.action.phase == "execution"
        and no_phase.problems == ["no_phase"]
    )
    two = parse_turn(
        '<trial>a</trial><tool_call>{"name": "f", "arguments": {}}</tool_call>'
        '<tool_call>{"name": "g", "arguments": {}}</tool_call>'
    )
    assert two.action.name == "f" and "several_calls" in two.problems
    nameless = parse_turn('<trial>a</trial><tool_call>{"arguments": {}}</tool_call>')
    assert isinstance(nameless.action, Invalid)
    answer = parse_turn("<answer> 42 </answer><|im_end|>trailing junk", n_tokens=7)
    assert answer.action == Answer("42", "", 7)


def test_openai_style_messages_with_string_arguments():
    message = {
        "trial": "check",
        "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}],
    }
    assert message_action(message).action == ToolCall("f", {"a": 1}, "trial", "check")
    broken = message_action({"execute": "", "tool_calls": [{"function": {"name": "f", "arguments": "{not json"}}]})
    assert broken.action.arguments == "{not json", "malformed arguments reach the environment, which reports them"


tags = st.sampled_from(
    [
        *MARKUP,
        "{",
        "}",
        '"name"',
        '"arguments"',
        ":",
        ",",
    ]
)
hostile_arguments = st.sampled_from(["[" * 3000 + "]" * 3000, "9" * 4301, '"\\ud83d"', "1e999"])
fragments = st.one_of(
    tags,
    st.text(max_size=12),
    st.builds(json.dumps, st.dictionaries(st.text(max_size=6), st.integers() | st.text(max_size=6), max_size=3)),
    st.builds(lambda arguments: json.dumps({"name": "get_capital", "arguments": arguments}), hostile_arguments),
)


def test_parser_never_raises_on_thousands_of_inputs():
    # 3,000 cover the fragment grammar; scripts/fuzz_inputs.py (test_scripts.py) fuzzes parse_turn too
    seen = 0

    @settings(
        max_examples=3_000, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.one_of(st.lists(fragments, max_size=14).map("".join), st.text(max_size=200), st.binary(max_size=60)))
    def check(text):
        nonlocal seen
        parsed = parse_turn(text)
        seen += 1
        assert isinstance(parsed, ParsedTurn)
        assert isinstance(parsed.action, (ToolCall, Answer, Invalid))

    check()
    assert seen >= 3_000


def test_parsing_time_is_bounded_and_deep_or_huge_arguments_are_typed():
    import time

    start = time.perf_counter()
    parsed = parse_turn("<trial>a</trial>" * 16_000)  # 256 KB of tags took 6.6 s
    assert parsed.problems == ["too_long"] and time.perf_counter() - start < 0.5
    for arguments in ("[" * 3000 + "]" * 3000, "9" * 4301):
        call = parse_turn(
            f"<execute>x</execute><tool_call>{json.dumps({'name': 'get_capital', 'arguments': arguments})}</tool_call>"
        ).action
        assert isinstance(call, ToolCall) and call.arguments == arguments, "left for the environment to refuse"


def test_unreadable_turns_get_the_environments_reply_as_a_user_message(catalog):
    from labkit.tasks import Task
    from labkit.teach import replay

    task = Task(id="x", query="What is the capital of Japan?", tools=["get_capital"], answer="Tokyo")
    env = ToolEnv(catalog)
    env.reset(task)
    env.step(parse_turn("I am not sure").action)
    env.step(Answer("Tokyo"))
    messages = trajectory_messages(env.trajectory)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert "bad_format" in messages[3]["content"]
    assert replay(task, messages, ToolEnv(catalog)).success


def test_a_teachers_slip_is_read_as_context_but_never_trained_on(catalog, tokenizer):
    """The loss mask TRL builds from the template's generation markers leaves out every slip, and only slips."""
    from labkit.data import trajectory_row

    env = ToolEnv(catalog, TEACHER_ENV)
    rows = [
        trajectory_row(run_episode(env, TrialTeacher(seed=0, mistake_rate=1.0), t), "x")
        for t in generate_tasks("train", 6, seed=0, catalog=catalog)
    ]
    row = next(r for r in rows if any(m.get("train") is False for m in r["messages"]))
    rendered = tokenizer.apply_chat_template(
        row["messages"],
        tools=json.loads(row["tools"]),
        chat_template=CHAT_TEMPLATE,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    trained = tokenizer.decode([i for i, m in zip(rendered["input_ids"], rendered["assistant_masks"]) if m])
    whole = tokenizer.decode(rendered["input_ids"])
    for message in (m for m in row["messages"] if m["role"] == "assistant"):
        call = (message.get("tool_calls") or [{}])[0].get("function", {}).get("arguments", "")
        turn = message["content"].lstrip() + ('<tool_call>\n{"name": "' if call else "")
        assert turn in whole, "every turn is rendered for the learner to read"
        assert (turn in trained) == (message.get("train") is not False), message["content"]
