"""What a notebook button will cost on this machine, from rates measured here a moment ago.

Notebooks show these estimates next to every training, GRPO and evaluation button, so a learner
knows before pressing whether it fits the slot. The rates come from timing the profile's model on
this machine (one LoRA training step, one turn of the rollout engine), not from a
table measured elsewhere: a busy or slower machine gets a longer estimate.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import asdict, dataclass

TIMING_TRAIN_TOKENS = 384  # about a training row: the shipped datasets' rows are 380-640 template tokens on average
TIMING_DECODE_STEPS = 8  # generation steps timed beyond the first
EPISODE_PROMPT_TOKENS = (
    400  # the system prompt, the tools' docs and the task: what each GRPO episode's training pass reads first
)
REPLY_SHARE = 1.0  # training reads a tool reply about as long as each turn the model wrote
SPEED_MAX_AGE_S = 15 * 60  # a measurement older than this is taken again: the machine may have got busier or quieter


@dataclass(frozen=True)
class Speed:
    """The profile's model on this machine, measured once per process and batch size."""

    model: str
    batch: int  # episodes played together
    train_tokens_per_s: float  # tokens through one LoRA training step (forward, backward, optimizer)
    prefill_s: float  # the rollout engine's first token of a turn, for the whole batch
    decode_step_s: float  # each further token of a turn, for the whole batch
    measured_in_s: float  # what the measurement itself took
    measured_at: float  # when (seconds since the epoch)

    def measured_ago(self) -> str:
        minutes = int((time.time() - self.measured_at) // 60)
        return "measured here just now" if minutes < 1 else f"measured here {minutes} min ago"

    def turn_seconds(self, max_new_tokens: int) -> float:
        """Upper bound for one turn of the batch: every episode writes its whole token budget."""
        return self.prefill_s + max_new_tokens * self.decode_step_s


def measured_speed(model: str, profile: str, batch: int, max_age_s: float = SPEED_MAX_AGE_S) -> Speed:
    """:func:`measure_speed`, or its result from the last ``max_age_s`` seconds on this machine.

    Notebooks opened one after another (03, 04, 05) share one measurement through a small file in labkit's
    cache folder, so only the first pays for it; each estimate says how long ago it was measured.
    """
    from labkit.models import cache_root
    from labkit.runs import slug

    saved = cache_root() / "speed" / f"{slug(model)}-{profile}-batch{batch}.json"
    try:
        speed = Speed(**json.loads(saved.read_text()))
        if time.time() - speed.measured_at <= max_age_s:
            return speed
    except (OSError, ValueError, TypeError):  # none yet, or from another version of this file
        pass
    speed = measure_speed(model, profile, batch)
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(asdict(speed)))
    return speed


@functools.cache
def measure_speed(model: str, profile: str, batch: int, train_batch: int = 2) -> Speed:
    """Time ``model`` here doing the real work: one LoRA step on ``train_batch`` rows, one turn of ``batch`` episodes.

    The turn runs through the lab's rollout engine on real tasks, once writing one token and once
    writing a few more, which separates reading the prompt from writing. Cached per process
    (a few seconds at the cpu profile on a quiet machine).
    """
    import torch
    from peft import get_peft_model

    from labkit.env import EnvConfig
    from labkit.models import load_model, lora_config
    from labkit.rollout import GenerationConfig, rollout_batch
    from labkit.sft import bf16_ok
    from labkit.tasks import generate_tasks

    started = time.perf_counter()
    loaded = load_model(model, profile=profile)
    tasks = generate_tasks("evolved", batch, seed=0)

    def turn(new_tokens: int) -> float:
        tick = time.perf_counter()
        gen = GenerationConfig(max_new_tokens=new_tokens, batch_size=batch)
        rollout_batch(loaded.model, loaded.tokenizer, tasks, None, EnvConfig(max_turns=1), gen, progress=False)
        return time.perf_counter() - tick

    prefill_s = turn(1)
    decode_step_s = max(turn(1 + TIMING_DECODE_STEPS) - prefill_s, 0.0) / TIMING_DECODE_STEPS

    lora = lora_config(16, 32)
    net = get_peft_model(loaded.model, lora)  # the rollouts are done: the same weights serve the training step
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(
        0,
        min(net.config.vocab_size, 32_000),
        (train_batch, TIMING_TRAIN_TOKENS),
        generator=torch.Generator().manual_seed(0),
    ).to(loaded.model.device)

    def train_step(tokens: int) -> float:
        tick = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_ok() and not torch.cuda.is_available()):
            net(input_ids=ids[:, :tokens], labels=ids[:, :tokens]).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - tick

    train_step(32)  # the first step sets up autocast and the optimizer's state: not a step's cost
    train_s = train_step(TIMING_TRAIN_TOKENS)
    return Speed(
        model=model,
        batch=batch,
        train_tokens_per_s=train_batch * TIMING_TRAIN_TOKENS / train_s,
        prefill_s=prefill_s,
        decode_step_s=decode_step_s,
        measured_in_s=time.perf_counter() - started,
        measured_at=time.time(),
    )


@dataclass(frozen=True)
class Estimate:
    """What a button will cost: a typical time and an upper bound, in seconds, and how they were reckoned."""

    typical_s: float
    at_most_s: float
    basis: str

    def describe(self) -> str:
        typical, most = format_duration(self.typical_s), format_duration(self.at_most_s)
        span = f"about **{typical}**" if typical == most else f"about **{typical}**, at most {most}"
        return f"{span} on this machine now ({self.basis})"


def format_duration(seconds: float) -> str:
    """Seconds as a person says them: '40 s', '3 min', '1 h 05 min'."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def sft_training_tokens(config) -> int:
    """Tokens an SFT run (``labkit.sft.SFTRunConfig``) trains on: its budget, or every row of its dataset that fits,
    times its epochs: what :func:`sft_estimate` is given."""
    if config.token_budget is not None:
        return int(config.token_budget * config.epochs)
    from labkit.data import load_dataset_dir, token_lengths
    from labkit.models import load_tokenizer

    lengths = token_lengths(list(load_dataset_dir(config.data)), load_tokenizer(config.policy))
    return int(sum(n for n in lengths if n <= config.max_length) * config.epochs)


def sft_estimate(tokens: int, runs: int, speed: Speed) -> Estimate:
    """``runs`` SFT runs of ``tokens`` training tokens each, at the measured training rate.

    Rows are padded to the longest in their batch and checkpoints are written as the run goes, which the timed step
    leaves out; the bound allows half again for that.
    """
    seconds = runs * tokens / speed.train_tokens_per_s
    return Estimate(
        seconds,
        1.5 * seconds,
        f"{runs} x {tokens:,} tokens at {speed.train_tokens_per_s:.0f} training tokens/s, {speed.measured_ago()}",
    )


def episodes_estimate(
    episodes: int, max_turns: int, max_new_tokens: int, speed: Speed, typical_turns: float | None = None
) -> Estimate:
    """Model episodes played ``speed.batch`` at a time: each batch takes the turns of its longest episode.

    The bound is every episode using every turn and every token; ``typical_turns`` (e.g. a shipped run's mean) gives the
    typical figure, else half the turns.
    """
    batches = math.ceil(episodes / speed.batch)
    turn = speed.turn_seconds(max_new_tokens)
    at_most = batches * max_turns * turn
    typical = batches * min(max_turns, typical_turns or max_turns / 2) * turn
    basis = (
        f"{episodes} episodes of up to {max_turns} turns, {speed.batch} "
        f"at a time, {turn:.1f} s a turn {speed.measured_ago()}"
    )
    return Estimate(typical, at_most, basis)


def grpo_estimate(
    steps: int,
    episodes_per_step: int,
    max_turns: int,
    max_new_tokens: int,
    speed: Speed,
    typical_turns: float | None = None,
) -> Estimate:
    """GRPO steps: each plays its episodes (as :func:`episodes_estimate`), then trains on what they wrote.

    Training reads each episode's prompt and, per turn, the model's tokens and a tool reply
    (``REPLY_SHARE`` as long); the reference model's pass for the KL term costs a third more.
    """
    play = episodes_estimate(episodes_per_step, max_turns, max_new_tokens, speed, typical_turns)

    def train_s(turns: float) -> float:
        tokens = episodes_per_step * (EPISODE_PROMPT_TOKENS + turns * (1 + REPLY_SHARE) * max_new_tokens)
        return 4 / 3 * tokens / speed.train_tokens_per_s

    typical_turns = min(max_turns, typical_turns or max_turns / 2)
    typical = steps * (play.typical_s + train_s(typical_turns))
    at_most = steps * (play.at_most_s + train_s(max_turns))
    basis = (
        f"{steps} steps of {episodes_per_step} episodes; {speed.turn_seconds(max_new_tokens):.1f} s a turn "
        f"and {speed.train_tokens_per_s:.0f} training tokens/s, {speed.measured_ago()}"
    )
    return Estimate(typical, at_most, basis)
