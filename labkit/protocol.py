"""Messages <-> text: the chat template, and parsing a model's turn into an action.

Every assistant turn declares its phase in its own words, so a trained model's
output can be classified without guessing:

    <trial>Checking what get_capital accepts.</trial>
    <tool_call>
    {"name": "get_capital", "arguments": {"country": "Japan"}}
    </tool_call>

    <execute>Now the real call.</execute>
    <tool_call>...</tool_call>

    <answer>Tokyo</answer>

Rendering uses one ChatML chat template with tools and ``{% generation %}``
markers (``templates/chat.jinja``; SmolLM2's own template has no tool support); parsing uses
transformers' response parser with a matching response template. The same pair
serves SFT, RL and evaluation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from transformers.utils.chat_parsing import parse_response
from transformers.utils.chat_template_utils import render_jinja_template

from labkit.env import Action, Answer, Invalid, Observation, ToolCall, Trajectory, plain_text

SYSTEM_PROMPT = (
    "Solve the task with the tools. Tools may have changed since their docs were written. "
    "Before each tool call, say why in <trial>...</trial> when you are testing what a tool accepts or returns, "
    "or in <execute>...</execute> when the call solves the task. Make one call per turn. "
    "Read every result and error. Finish with <answer>...</answer>."
)

# ChatML with tools, in the Qwen2.5 style; SmolLM2's vocabulary has <|im_start|> and <|im_end|>.
# Tools render as one signature line (``name(param: type, optional?: a|b): summary``) plus one line per
# documented parameter: a third of the tokens of their JSON schemas, which matters on a CPU.
# Arguments may arrive as a dict or, from datasets, as a JSON string: both render the same.
# The template is one line, as every trained adapter's tokenizer holds it: the file's line breaks are for reading,
# and SYSTEM_PROMPT goes in as a string literal, so that a saved tokenizer's template stands on its own.
CHAT_TEMPLATE = "".join(
    files("labkit.templates").joinpath("chat.jinja").read_text(encoding="utf-8").splitlines()
).replace("SYSTEM_PROMPT", json.dumps(SYSTEM_PROMPT))

RESPONSE_TEMPLATE = {
    "version": 1,
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "trial": {"open": "<trial>", "close": "</trial>"},
        "execute": {"open": "<execute>", "close": "</execute>"},
        "tool_calls": {
            "open": "<tool_call>",
            "close": "</tool_call>",
            "content": "json",
            "repeats": True,
            "transform": {"type": "function", "function": "{content}"},
        },
        "answer": {"open": "<answer>", "close": "</answer>"},
        "content": {},
    },
}
END_OF_TURN = "<|im_end|>"
# Every tag a turn is parsed by, and the turn's end: what a hostile turn is built from (the fuzzers).
MARKUP = (
    *(tag[end] for tag in RESPONSE_TEMPLATE["fields"].values() if tag for end in ("open", "close")),
    END_OF_TURN,
)
MAX_TURN_CHARS = 16_384  # about 4,000 tokens: far more than any profile generates in a turn


def render(messages: list[dict], tools: list[dict] | None = None, add_generation_prompt: bool = False) -> str:
    """A conversation as the model sees it, without needing a tokenizer."""
    rendered, _ = render_jinja_template(
        conversations=[messages],
        tools=tools,
        chat_template=CHAT_TEMPLATE,
        add_generation_prompt=add_generation_prompt,
        default_system=SYSTEM_PROMPT,
    )
    return rendered[0]


# ----------------------------------------------------------------------------- actions -> messages


def assistant_message(action: Action) -> dict:
    """The assistant turn that expresses ``action``, with its phase written into the text."""
    if isinstance(action, ToolCall):
        tag = "trial" if action.phase == "trial" else "execute"
        arguments = action.arguments if isinstance(action.arguments, dict) else {}
        message = {
            "role": "assistant",
            "content": f"<{tag}>{action.thought}</{tag}>\n",
            "tool_calls": [{"type": "function", "function": {"name": str(action.name), "arguments": arguments}}],
        }
        return {**message, "train": False} if action.slip else message
    if isinstance(action, Answer):
        return {"role": "assistant", "content": f"<answer>{action.text}</answer>"}
    return {"role": "assistant", "content": str(action.raw).split(END_OF_TURN, 1)[0]}


def tool_message(name: str, observation: Observation) -> dict:
    return {"role": "tool", "name": name, "content": observation.content}


def trajectory_messages(trajectory: Trajectory, system: str = SYSTEM_PROMPT) -> list[dict]:
    """The episode as an HF conversational tool-calling transcript."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": trajectory.task.query}]
    for step in trajectory.steps:
        messages.append(assistant_message(step.action))
        if step.observation is None:
            continue
        if isinstance(step.action, ToolCall):
            messages.append(tool_message(str(step.action.name), step.observation))
        else:  # no call to answer: the environment's word on an unreadable turn comes as the user's
            messages.append({"role": "user", "content": step.observation.content})
    return messages


# ----------------------------------------------------------------------------- text -> actions


@dataclass
class ParsedTurn:
    """What a model's turn said: an action, plus any format slips that a reward can count."""

    action: Action
    problems: list[str] = field(default_factory=list)


def parse_turn(text: Any, n_tokens: int | None = None) -> ParsedTurn:
    """Turn any model output into a valid action or a typed ``Invalid``. Never raises."""
    raw = plain_text(text)
    turn = raw.split(END_OF_TURN, 1)[0]
    if len(turn) > MAX_TURN_CHARS:  # the parser's time grows with the square of the tags: bound what it reads
        return ParsedTurn(
            Invalid(raw, f"the turn is {len(turn):,} characters long; make one tool call or give the answer", n_tokens),
            ["too_long"],
        )
    try:
        parsed = parse_response(turn, RESPONSE_TEMPLATE, prefix="")
    except Exception as exc:  # the parser raises on malformed JSON inside <tool_call>
        return ParsedTurn(
            Invalid(raw, f"could not read the tool call: {plain_text(exc).split(chr(10))[0][:300]}", n_tokens),
            ["bad_json"],
        )
    return message_action(parsed, raw, n_tokens)


def message_action(message: dict, raw: str = "", n_tokens: int | None = None) -> ParsedTurn:
    """An action from a parsed assistant message (ours, or an OpenAI-style API response)."""
    calls = message.get("tool_calls") or []
    answer = message.get("answer")
    problems = []
    if calls and answer is not None:
        problems.append("call_and_answer")
    if len(calls) > 1:
        problems.append("several_calls")
    if calls:
        call = calls[0] if isinstance(calls[0], dict) else {}
        function = call.get("function", call) if isinstance(call.get("function", call), dict) else {}
        name, arguments = function.get("name"), function.get("arguments", {})
        if not isinstance(name, str) or not name:
            return ParsedTurn(Invalid(raw, 'a tool call needs a "name"', n_tokens), problems + ["no_name"])
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except (ValueError, RecursionError):  # bad JSON, too deep, or a number of over 4,300 digits
                pass  # the environment reports malformed arguments to the agent
        phase, thought = _phase(message)
        if phase is None:
            problems.append("no_phase")
        return ParsedTurn(ToolCall(name, arguments, phase or "execution", thought, n_tokens), problems)
    if answer is not None:
        return ParsedTurn(Answer(str(answer).strip(), "", n_tokens), problems)
    return ParsedTurn(
        Invalid(raw, "no <tool_call> and no <answer>: make one tool call or give the final answer", n_tokens),
        ["no_action"],
    )


def _phase(message: dict) -> tuple[str | None, str]:
    if message.get("trial") is not None:
        return "trial", str(message["trial"]).strip()
    if message.get("execute") is not None:
        return "execution", str(message["execute"]).strip()
    return None, ""
