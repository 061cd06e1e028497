"""The batched rollout engine, on the tiny random-init model (seconds) and once on the embedded SmolLM2-135M.

The tiny model knows nothing, so left to itself it writes turns of newlines
that hit ``max_new_tokens``. Two logits processors handed to the real
``model.generate`` steer it where a test needs it: :class:`ScriptedTurns` forces
scripted turns in the canonical form, to check transcripts token-for-token
against the chat template; :class:`StopEarly` ends the model's own turns at
different lengths, so batched rows finish at different times. Padding,
stopping, the KV cache, parsing, stepping and the environment's replies all
run for real.
"""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from labkit.env import Answer, EnvConfig, Invalid, ToolCall, build_toolset
from labkit.models import tiny_model
from labkit.protocol import END_OF_TURN, SYSTEM_PROMPT, assistant_message, render, trajectory_messages
from labkit.rollout import BUDGET_LENGTH, TRUNCATED, GenerationConfig, rollout_batch, sequential_rollouts
from labkit.tasks import generate_tasks

GENERATION_PROMPT = "<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def tiny(tokenizer):
    return tiny_model(tokenizer, seed=0)


@pytest.fixture(scope="module")
def sharp(tokenizer):
    """The tiny model with its weights scaled up tenfold, so that what it writes depends on all it reads.

    The plain tiny model writes newlines whatever its context; this one notices
    a wrong position, an unmasked pad or a stale cache entry.
    """
    model = tiny_model(tokenizer, seed=0)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "norm" not in name:
                weight.mul_(10)
    return model


@pytest.fixture(scope="module")
def tasks(catalog):
    return generate_tasks("seen", 8, seed=0, catalog=catalog)


class Recorder:
    """The real model, with each ``generate`` call's batch size recorded and, optionally, its turns scripted."""

    def __init__(self, model, script: LogitsProcessor | None = None):
        self.model, self.script, self.batch_sizes = model, script, []

    @property
    def device(self):
        return self.model.device

    def generate(self, **kwargs):
        self.batch_sizes.append(kwargs["input_ids"].shape[0])
        if self.script is not None:
            kwargs["logits_processor"] = LogitsProcessorList([self.script])
        return self.model.generate(**kwargs)


def turn_text(action) -> str:
    """What the chat template writes for ``action`` between the generation prompt and <|im_end|>."""
    return render([assistant_message(action)]).split(GENERATION_PROMPT, 1)[1].removesuffix(END_OF_TURN + "\n")


def prompt_ids(tokenizer, catalog, task) -> tuple[int, ...]:
    docs = build_toolset(catalog, task).docs
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": task.query}]
    return tuple(tokenizer.apply_chat_template(messages, tools=docs, add_generation_prompt=True, return_dict=False))


def where_in_turn(ids: list[int], eos: int, turn_start: list[int]) -> tuple[tuple[int, ...], int, int]:
    """A batch row's episode prompt, which turn it is writing, and how many tokens of it are written so far."""
    while ids[0] == eos:  # left padding (pad = <|im_end|>); every prompt opens with <|im_start|>
        ids = ids[1:]
    n = len(turn_start)
    starts = [i + n for i in range(len(ids) - n + 1) if ids[i : i + n] == turn_start]
    return tuple(ids[: starts[0]]), len(starts) - 1, len(ids) - starts[-1]


class ScriptedTurns(LogitsProcessor):
    """Forces every episode's k-th turn to a scripted text; each row finds its episode by its prompt."""

    def __init__(self, tokenizer, scripts: dict[tuple[int, ...], list[str]]):
        self.eos = tokenizer.eos_token_id
        self.turn_start = tokenizer.encode(GENERATION_PROMPT, add_special_tokens=False)
        self.scripts = {
            p: [tokenizer.encode(t, add_special_tokens=False) + [self.eos] for t in turns]
            for p, turns in scripts.items()
        }

    def __call__(self, input_ids, scores):
        forced = torch.full_like(scores, float("-inf"))
        for row, ids in enumerate(input_ids.tolist()):
            prompt, turn, written = where_in_turn(ids, self.eos, self.turn_start)
            script = self.scripts[prompt][turn]
            forced[row, script[written] if written < len(script) else self.eos] = 0.0
        return forced


class StopEarly(LogitsProcessor):
    """Ends each turn after a length set by its episode's prompt and turn number; the tokens before are the model's own.

    Rows then finish at different times and stay in the batch as masked holes,
    while what each row writes does not depend on the rest of the batch.
    """

    def __init__(self, tokenizer):
        self.eos = tokenizer.eos_token_id
        self.turn_start = tokenizer.encode(GENERATION_PROMPT, add_special_tokens=False)

    def __call__(self, input_ids, scores):
        for row, ids in enumerate(input_ids.tolist()):
            prompt, turn, written = where_in_turn(ids, self.eos, self.turn_start)
            if written >= 2 + (len(prompt) + 5 * turn) % 11:
                scores[row] = float("-inf")
                scores[row, self.eos] = 0.0
        return scores


def scripted_actions(task, i: int) -> list:
    """Four shapes of episode: answer at once; trial then answer;
    execute, slip, answer; three trials (cut by max_turns=3)."""
    call, answer = task.calls[0], Answer(str(task.answer))
    trial = ToolCall(call.name, call.arguments, "trial", "What does it return?")
    return [
        [answer],
        [trial, answer],
        [ToolCall(call.name, call.arguments, "execution", "This solves it."), Invalid("Let me think.", ""), answer],
        [trial, trial, trial, answer],
    ][i % 4]


def scripted_run(tiny, tokenizer, catalog, tasks, gen: GenerationConfig):
    scripts = {
        prompt_ids(tokenizer, catalog, t): [turn_text(a) for a in scripted_actions(t, i)] for i, t in enumerate(tasks)
    }
    assert len(scripts) == len(tasks)  # every row can find its episode
    model = Recorder(tiny, ScriptedTurns(tokenizer, scripts))
    return rollout_batch(
        model, tokenizer, tasks, catalog, EnvConfig(max_turns=3), gen, progress=False
    ), model.batch_sizes


@pytest.fixture(scope="module")
def scripted(tiny, tokenizer, catalog, tasks):
    return scripted_run(tiny, tokenizer, catalog, tasks, GenerationConfig(max_new_tokens=64))


def template(tokenizer, rollout) -> tuple[list[int], list[int]]:
    """The chat template's ids and assistant mask for the rollout's trajectory."""
    encoded = tokenizer.apply_chat_template(
        trajectory_messages(rollout.trajectory),
        tools=rollout.trajectory.toolset.docs,
        return_assistant_tokens_mask=True,
        return_dict=True,
    )
    return encoded["input_ids"], encoded["assistant_masks"]


def runs(ids: list[int], mask: list[int]) -> list[tuple[int, list[int]]]:
    """Maximal runs of equal mask bits: [(bit, ids), ...]."""
    out = []
    for token, bit in zip(ids, mask):
        if out and out[-1][0] == bit:
            out[-1][1].append(token)
        else:
            out.append((bit, [token]))
    return out


def check_against_template(tokenizer, rollout) -> None:
    """Environment spans equal the template's token-for-token; a model span differs only where the model's text does."""
    expected, mask = template(tokenizer, rollout)
    eos, ids, owner = tokenizer.eos_token_id, rollout.token_ids, rollout.owner
    # The <|im_end|> appended to a truncated turn is owner 0 by design; the template counts it as the turn's.
    appended = [i for i in range(1, len(ids)) if ids[i] == eos and owner[i] == 0 and owner[i - 1] == 1]
    as_template = [1 if i in appended else bit for i, bit in enumerate(owner)]
    ours, theirs = runs(ids, as_template), runs(expected, mask)
    assert [bit for bit, _ in ours] == [bit for bit, _ in theirs]
    steps = iter(rollout.trajectory.steps)
    for (bit, got), (_, want) in zip(ours, theirs):
        if bit == 0:
            assert got == want
            continue
        action = next(steps).action
        if got != want and isinstance(action, Invalid):  # the template re-renders its text, left-stripped
            assert tokenizer.decode(got[:-1]) == action.raw
            assert tokenizer.decode(want[:-1]) == action.raw.lstrip()


# ----------------------------------------------------------------------------- transcripts


def test_transcripts_equal_the_chat_template_token_for_token(scripted, tokenizer):
    rollouts, _ = scripted
    for r in rollouts:
        expected, mask = template(tokenizer, r)
        assert r.token_ids == expected
        assert r.owner == mask
        assert r.generated_tokens == sum(r.owner)
        for step, problems in zip(r.trajectory.steps, r.problems, strict=True):
            assert problems == ([] if isinstance(step.action, (ToolCall, Answer)) else ["no_action"])
    assert [[s.phase for s in r.trajectory.steps] for r in rollouts[:4]] == [
        ["answer"],
        ["trial", "answer"],
        ["execution", "invalid", "answer"],
        ["trial", "trial", "trial"],
    ]
    assert [r.trajectory.end_reason for r in rollouts[:4]] == ["answered", "answered", "answered", "budget_turns"]
    assert rollouts[1].trajectory.steps[0].observation.ok  # a real tool answered the trial


def test_finished_episodes_drop_out_of_the_batch(scripted):
    _, batch_sizes = scripted
    assert batch_sizes == [8, 6, 4]  # 1-turn episodes leave after turn 1, 2-turn ones after turn 2


def test_free_running_turns_are_capped_and_kept_as_written(tiny, tokenizer, catalog, tasks):
    gen = GenerationConfig(max_new_tokens=6)
    rollouts = rollout_batch(tiny, tokenizer, tasks[:4], catalog, EnvConfig(max_turns=2), gen, progress=False)
    for r in rollouts:
        assert r.trajectory.done and r.trajectory.end_reason == "budget_turns" and len(r.trajectory.steps) == 2
        turns = [ids for bit, ids in runs(r.token_ids, r.owner) if bit]
        for ids, problems in zip(turns, r.problems, strict=True):
            assert len(ids) <= gen.max_new_tokens
            assert (TRUNCATED in problems) == (ids[-1] != tokenizer.eos_token_id)
        assert r.generated_tokens == sum(r.owner) <= 2 * gen.max_new_tokens
        check_against_template(tokenizer, r)


def test_batched_and_sequential_greedy_rollouts_are_identical(sharp, tokenizer, catalog, tasks):
    """Batched: left padding, holes where rows stopped early,
    the KV cache kept between turns. Sequential: none of it."""
    model = Recorder(sharp, StopEarly(tokenizer))
    gen, env_config = GenerationConfig(max_new_tokens=16, batch_size=6), EnvConfig(max_turns=3)
    batched = rollout_batch(model, tokenizer, tasks[:6], catalog, env_config, gen, progress=False)
    sequential = sequential_rollouts(model, tokenizer, tasks[:6], catalog, env_config, gen, progress=False)
    for b, s in zip(batched, sequential):
        assert b.token_ids == s.token_ids and b.owner == s.owner and b.problems == s.problems
        assert [st.action for st in b.trajectory.steps] == [st.action for st in s.trajectory.steps]
    assert model.batch_sizes[:3] == [6, 6, 6] and set(model.batch_sizes[3:]) == {1}
    # prompts and turns differ in length, so the batched run really was padded and had holes
    assert len({len(r.token_ids[: r.owner.index(1)]) for r in batched}) > 1
    assert len({len(ids) for r in batched for bit, ids in runs(r.token_ids, r.owner) if bit}) > 1


def test_max_length_ends_episodes_without_outgrowing_it(tiny, tokenizer, catalog, tasks):
    longest_prompt = max(len(prompt_ids(tokenizer, catalog, t)) for t in tasks)
    gen = GenerationConfig(max_new_tokens=64, max_length=longest_prompt + 64 + 1 + 20)  # room for one turn, not two
    rollouts, _ = scripted_run(tiny, tokenizer, catalog, tasks, gen)
    for r in rollouts:
        assert r.trajectory.done and len(r.token_ids) <= gen.max_length
        assert template(tokenizer, r)[0][: len(r.token_ids)] == r.token_ids  # a prefix of the full transcript
    cut = [i for i, r in enumerate(rollouts) if r.trajectory.end_reason == BUDGET_LENGTH]
    assert cut and all(len(rollouts[i].trajectory.steps) < len(scripted_actions(tasks[i], i)) for i in cut)

    free = rollout_batch(
        tiny, tokenizer, tasks[:3], catalog, None, GenerationConfig(max_new_tokens=32, max_length=400), progress=False
    )
    assert all(r.trajectory.end_reason == BUDGET_LENGTH and len(r.token_ids) <= 400 for r in free)

    no_room = rollout_batch(tiny, tokenizer, tasks[:2], catalog, None, GenerationConfig(max_length=100), progress=False)
    assert all(r.trajectory.done and not r.trajectory.steps and r.token_ids == [] for r in no_room)


def test_seeded_sampling_is_reproducible(tiny, tokenizer, catalog, tasks):
    def sample(seed: int) -> list[list[int]]:
        gen = GenerationConfig(max_new_tokens=12, temperature=1.0, seed=seed)
        return [
            r.token_ids
            for r in rollout_batch(tiny, tokenizer, tasks[:4], catalog, EnvConfig(max_turns=2), gen, progress=False)
        ]

    assert sample(3) == sample(3)
    assert sample(3) != sample(4)


# ----------------------------------------------------------------------------- the embedded model


@pytest.mark.slow
def test_embedded_model_runs_real_episodes(tokenizer, catalog, tasks):
    from labkit.models import load_embedded_model

    gen = GenerationConfig(max_new_tokens=32)  # sized to stay well under 40 s on 2 cores
    rollouts = rollout_batch(
        load_embedded_model(), tokenizer, tasks[:2], catalog, EnvConfig(max_turns=2), gen, progress=False
    )
    for r in rollouts:
        assert r.trajectory.done and 1 <= len(r.trajectory.steps) <= 2
        assert r.generated_tokens > 0 and len(r.problems) == len(r.trajectory.steps)
        check_against_template(tokenizer, r)
