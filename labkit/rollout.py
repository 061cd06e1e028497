"""Batched multi-turn generation: the one rollout engine that evaluation and RL share.

Every live episode in a chunk of ``batch_size`` tasks advances with ONE
``model.generate`` call per turn: the episodes are left-padded into one batch,
each row's new tokens are parsed into an action
(:func:`labkit.protocol.parse_turn`) and stepped in its own
:class:`~labkit.env.ToolEnv`, and the environment's reply is appended as the
tokens the chat template gives it. Finished episodes drop out of the batch. The
KV cache is kept between turns, so each turn the model reads only what the
environment added, not the whole transcript again. :func:`sequential_rollouts`
is the naive baseline: batch of 1, the whole transcript re-read every turn.
The policy can also be a model served by vLLM (:class:`ServedModel`, GRPO's
``--vllm-server``): then every turn sends the live transcripts to the server,
whose prefix cache plays the part of the KV cache.

A :class:`Rollout` keeps the episode as token ids with an ``owner`` mask (1 =
sampled by the model, 0 = prompt, tool results, feedback, template glue), which
is what RL's loss masking needs. The model-owned spans hold exactly the tokens
the model sampled, so log-probs recomputed on ``token_ids`` are on-policy. The
environment's spans are rendered by the tokenizer's chat template, so when the
model writes its turns in the form :func:`labkit.protocol.assistant_message`
renders (what SFT teaches), ``token_ids`` equal
``tokenizer.apply_chat_template(trajectory_messages(traj), tools=docs)``
token-for-token and ``owner`` equals the template's assistant-token mask. A turn
the model wrote differently (odd spacing, differently formatted JSON, an unusual
split into tokens) differs from the template only inside its own owner-1 span.

Two decisions that keep the transcript well formed:

- A turn that hits ``max_new_tokens`` without ``<|im_end|>`` gets one appended
  with owner 0: the model never sampled it, so no loss should push it up or
  down (the template's assistant mask would count it). The turn's problems
  gain ``"truncated"``.
- ``token_ids`` never grow past ``gen.max_length``. An episode continues only
  while the environment's reply plus a full next turn (``max_new_tokens + 1``)
  still fit; otherwise it ends with ``end_reason = "budget_length"`` (no
  invented answer step, so the transcript stays true). The environment's last
  reply is appended only if it fits; if not, ``token_ids`` stop after the
  model's last turn, a prefix of the template's rendering (tokens after the
  model's last turn carry no loss anyway). A prompt with no room for one turn
  ends its episode before any step, with empty ``token_ids``.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Sequence

from tqdm.auto import tqdm

from labkit.env import EnvConfig, ToolEnv, Trajectory
from labkit.protocol import END_OF_TURN, parse_turn, trajectory_messages
from labkit.tasks import Task
from labkit.tools.registry import Catalog, load_catalog

if TYPE_CHECKING:  # torch/transformers stay out of `import labkit`
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TRUNCATED = "truncated"  # a per-turn problem: the turn hit max_new_tokens before <|im_end|>
BUDGET_LENGTH = "budget_length"  # end_reason when the transcript would outgrow gen.max_length


@dataclass
class GenerationConfig:
    max_new_tokens: int = 96  # per turn
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    batch_size: int = 16  # episodes generated together
    max_length: int = 2048  # tokens in a whole episode's transcript
    seed: int = 0
    reuse_cache: bool = True  # keep the KV cache between turns; False re-reads the whole transcript every turn
    logprobs: bool = False  # record each sampled token's log-probability (RL's importance ratios and checks need them)


@dataclass
class Rollout:
    trajectory: Trajectory
    token_ids: list[int]  # the whole episode as the model saw and wrote it
    owner: list[int]  # 1 where the model sampled the token, 0 elsewhere
    problems: list[list[str]]  # format slips per turn (ParsedTurn.problems, plus "truncated")
    generated_tokens: int
    prompt_length: int  # token_ids[:prompt_length] is the first prompt: system, tools, user, generation prompt
    # per token of token_ids: the sampled token's log-prob at the sampling temperature, 0 where owner is 0
    # (empty unless gen.logprobs)
    logprobs: list[float]
    env_seconds: float  # time spent in the environment's step()


@dataclass
class _Episode:
    """One live episode: its environment and the token transcript built so far."""

    env: ToolEnv
    docs: list[dict]
    token_ids: list[int] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)
    problems: list[list[str]] = field(default_factory=list)
    prompt_length: int = 0
    logprobs: list[float] = field(default_factory=list)
    env_seconds: float = 0.0

    @property
    def trajectory(self) -> Trajectory:
        return self.env.trajectory

    @property
    def done(self) -> bool:
        return self.trajectory.done

    def extend(self, ids: list[int], owner: int, logprobs: list[float] | None = None) -> None:
        self.token_ids += ids
        self.owner += [owner] * len(ids)
        self.logprobs += logprobs if logprobs is not None else [0.0] * len(ids)

    def rollout(self, keep_logprobs: bool) -> Rollout:
        logprobs = self.logprobs if keep_logprobs else []
        return Rollout(
            self.trajectory,
            self.token_ids,
            self.owner,
            self.problems,
            sum(self.owner),
            self.prompt_length,
            logprobs,
            self.env_seconds,
        )


class ServedModel:
    """A policy served by vLLM, reached through TRL's ``VLLMClient``: pass it to :func:`rollout_batch` as the model.

    The client is built by the caller (only GPU machines have vLLM). The server must
    return log-probs at the sampling temperature (``--logprobs-mode processed_logprobs``),
    as :func:`_sampled_logprobs` does for a local model. Its sampling is not seeded:
    seeding each request would give the episodes of a group the same first turn.
    """

    def __init__(self, client, end_of_turn_id: int):
        self.client, self.end_of_turn_id = client, end_of_turn_id

    def complete(
        self, transcripts: list[list[int]], gen: GenerationConfig
    ) -> tuple[list[list[int]], list[list[float] | None]]:
        """Each transcript's next turn, through its <|im_end|> if it wrote one, and the log-probs of its tokens."""
        output = self.client.generate(
            transcripts,
            temperature=gen.temperature,
            top_p=gen.top_p,
            max_tokens=gen.max_new_tokens,
            logprobs=0 if gen.logprobs else None,
            generation_kwargs={"stop_token_ids": [self.end_of_turn_id]},
        )
        if not gen.logprobs:
            return output["completion_ids"], [None] * len(transcripts)
        return output["completion_ids"], [[top[0] for top in turn] for turn in output["logprobs"]]


def rollout_batch(
    model: PreTrainedModel | ServedModel,
    tokenizer: PreTrainedTokenizerBase,
    tasks: Sequence[Task],
    catalog: Catalog | None,
    env_config: EnvConfig | None = None,
    gen: GenerationConfig | None = None,
    progress: bool = True,
    bar: tqdm | None = None,
) -> list[Rollout]:
    """Run one episode per task with the model as the policy; rollouts come back in task order.

    ``bar``, a caller's progress bar, is advanced instead of a new one: by each episode as it
    finishes, with the turn being played in its postfix, so a long batch never looks stuck.
    """
    import torch

    gen = gen or GenerationConfig()
    catalog = catalog or load_catalog()  # once, not once per environment
    torch.manual_seed(gen.seed)
    rollouts = []
    own = (
        tqdm(total=len(tasks), desc="rollout", unit="episode", disable=not progress)
        if bar is None
        else nullcontext(bar)
    )
    with own as bar:
        for start in range(0, len(tasks), gen.batch_size):
            chunk = [
                _start(ToolEnv(catalog, env_config), task, tokenizer, gen)
                for task in tasks[start : start + gen.batch_size]
            ]
            try:
                bar.update(sum(e.done for e in chunk))
                live = [e for e in chunk if not e.done]
                batch = (
                    _ServedBatch(live)
                    if isinstance(model, ServedModel)
                    else _Batch(live, tokenizer.pad_token_id, _end_of_turn_id(tokenizer))
                )
                turn = 0
                while batch.episodes:
                    turn += 1
                    bar.set_postfix_str(f"turn {turn}, {len(batch.episodes)} episodes playing", refresh=True)
                    turns, logprobs = batch.generate(model, gen)
                    for episode, new_ids, new_logprobs in zip(batch.episodes, turns, logprobs):
                        _take_turn(episode, new_ids, new_logprobs, tokenizer, gen)
                        bar.update(episode.done)
                    batch.drop_finished()
            finally:
                for episode in chunk:
                    episode.env.close()
            rollouts += [e.rollout(gen.logprobs) for e in chunk]
    return rollouts


def sequential_rollouts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    tasks: Sequence[Task],
    catalog: Catalog | None,
    env_config: EnvConfig | None = None,
    gen: GenerationConfig | None = None,
    progress: bool = True,
) -> list[Rollout]:
    """The naive baseline: one episode at a time, one ``generate`` of batch 1 per turn over the whole transcript."""
    naive = replace(gen or GenerationConfig(), batch_size=1, reuse_cache=False)
    return rollout_batch(model, tokenizer, tasks, catalog, env_config, naive, progress)


# ----------------------------------------------------------------------------- one episode


def _end_of_turn_id(tokenizer) -> int:
    return tokenizer.convert_tokens_to_ids(END_OF_TURN)


def _render(tokenizer, episode: _Episode, messages: list[dict], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        messages, tools=episode.docs, tokenize=False, add_generation_prompt=generation_prompt
    )


def _start(env: ToolEnv, task: Task, tokenizer, gen: GenerationConfig) -> _Episode:
    """Reset the environment and write the first prompt: system + tools, user, generation prompt."""
    episode = _Episode(env, env.reset(task).docs)
    _append_reply(
        episode, tokenizer, gen, lambda live: _render(tokenizer, episode, trajectory_messages(episode.trajectory), live)
    )
    episode.prompt_length = len(episode.token_ids)
    return episode


def _take_turn(
    episode: _Episode, new_ids: list[int], logprobs: list[float] | None, tokenizer, gen: GenerationConfig
) -> None:
    """Parse and step the model's turn, then append the environment's reply."""
    eos = _end_of_turn_id(tokenizer)
    stopped = bool(new_ids) and new_ids[-1] == eos
    text = tokenizer.decode(new_ids[:-1] if stopped else new_ids, skip_special_tokens=False)
    parsed = parse_turn(text, n_tokens=len(new_ids))
    started = time.perf_counter()
    episode.env.step(parsed.action)
    episode.env_seconds += time.perf_counter() - started
    episode.problems.append(parsed.problems if stopped else parsed.problems + [TRUNCATED])
    episode.extend(new_ids, owner=1, logprobs=logprobs)
    if not stopped:
        episode.extend([eos], owner=0)  # see the module docstring: well formed, but not the model's

    messages = trajectory_messages(episode.trajectory)
    # The turn added the assistant message and, unless it answered, the environment's reply.
    n_through_turn = len(messages) - (episode.trajectory.steps[-1].observation is not None)
    through_turn = _render(tokenizer, episode, messages[:n_through_turn], False)
    # That render ends "<|im_end|>\n": everything after the <|im_end|> is the environment's.
    assert through_turn.endswith(END_OF_TURN + "\n"), through_turn[-40:]
    cut = len(through_turn) - 1
    _append_reply(episode, tokenizer, gen, lambda live: _render(tokenizer, episode, messages, live)[cut:])


def _append_reply(episode: _Episode, tokenizer, gen: GenerationConfig, reply_text) -> None:
    """Append the environment's text (``reply_text(generation_prompt)``), ending the episode when it runs out of room.

    The reply starts right after a special token (or at the start), so tokenizing
    it alone gives the same ids as tokenizing the whole transcript.
    """

    def encode(live: bool) -> list[int]:
        return tokenizer(reply_text(live), add_special_tokens=False)["input_ids"]

    ids = encode(live=not episode.done)
    if not episode.done and len(episode.token_ids) + len(ids) + gen.max_new_tokens + 1 > gen.max_length:
        trajectory = episode.trajectory
        trajectory.done, trajectory.end_reason = True, BUDGET_LENGTH
        ids = encode(live=False)
    if len(episode.token_ids) + len(ids) <= gen.max_length:
        episode.extend(ids, owner=0)


# ----------------------------------------------------------------------------- one batched turn


class _Batch:
    """The live episodes of a chunk as one left-padded batch, with their KV cache kept from turn to turn.

    ``ids``/``mask`` hold every column the model has been fed or has written, pads
    included: left padding, the pads after a row's <|im_end|> when other rows
    wrote on, and the padding that right-aligns each row's new tokens. Pads are
    masked, and position ids come from the mask's running count, so each row is
    computed as if it were alone. Each turn only the tokens the environment
    added since the last turn are new to the model: with ``reuse_cache`` the
    model reads just those, instead of the whole transcript again.
    """

    def __init__(self, episodes: list[_Episode], pad: int, eos: int):
        self.episodes, self.pad, self.eos = episodes, pad, eos
        self._reset()

    def _reset(self) -> None:
        import torch

        self.ids = torch.empty((len(self.episodes), 0), dtype=torch.long)
        self.mask = torch.empty_like(self.ids)
        self.cache = None
        self.fed = [0] * len(self.episodes)  # how much of each episode's token_ids the columns hold

    def generate(self, model, gen: GenerationConfig) -> tuple[list[list[int]], list[list[float] | None]]:
        """One ``generate`` call for every row: each row's new ids,
        through its <|im_end|> if it wrote one, and their log-probs."""
        import torch

        if not gen.reuse_cache:
            self._reset()
        new = [e.token_ids[n:] for e, n in zip(self.episodes, self.fed)]
        width = max(len(ids) for ids in new)
        columns = torch.full((len(new), width), self.pad, dtype=torch.long)
        real = torch.zeros_like(columns)
        for row, ids in enumerate(new):  # right-aligned: every row's next token lands in the same column
            columns[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            real[row, width - len(ids) :] = 1
        self.ids, self.mask = torch.cat([self.ids, columns], dim=1), torch.cat([self.mask, real], dim=1)

        if gen.temperature > 0:
            # top_k=0 switches off transformers' default top-50, so temperature and top_p alone shape sampling.
            sampling = dict(do_sample=True, temperature=gen.temperature, top_p=gen.top_p, top_k=0)
        else:
            sampling = dict(do_sample=False)
        with torch.no_grad():
            output = model.generate(
                input_ids=self.ids.to(model.device),
                attention_mask=self.mask.to(model.device),
                past_key_values=self.cache,
                max_new_tokens=gen.max_new_tokens,
                eos_token_id=self.eos,
                pad_token_id=self.pad,
                return_dict_in_generate=True,
                output_logits=gen.logprobs,
                **sampling,
            )
        written = output.sequences[:, self.ids.shape[1] :].cpu()
        # Rows that stopped early are filled with pad after their eos; pad may equal eos, so cut at the first eos.
        turns = [ids[: ids.index(self.eos) + 1] if self.eos in ids else ids for ids in written.tolist()]
        logprobs = _sampled_logprobs(output.logits, written, turns, gen) if gen.logprobs else [None] * len(turns)
        real = torch.zeros_like(written)
        for row, ids in enumerate(turns):
            real[row, : len(ids)] = 1  # the pads after a row's eos are holes from now on
        self.ids, self.mask = torch.cat([self.ids, written], dim=1), torch.cat([self.mask, real], dim=1)
        self.cache, self.device = (output.past_key_values if gen.reuse_cache else None), model.device
        self.fed = [len(e.token_ids) + len(ids) for e, ids in zip(self.episodes, turns)]
        return turns, logprobs

    def drop_finished(self) -> None:
        import torch

        keep = [row for row, e in enumerate(self.episodes) if not e.done]
        self.episodes = [self.episodes[row] for row in keep]
        self.fed = [self.fed[row] for row in keep]
        self.ids, self.mask = self.ids[keep], self.mask[keep]
        if self.cache is not None:
            self.cache.batch_select_indices(torch.tensor(keep, dtype=torch.long, device=self.device))


class _ServedBatch:
    """The live episodes of a chunk for a :class:`ServedModel`:
    the server batches and caches, so this only keeps the list."""

    def __init__(self, episodes: list[_Episode]):
        self.episodes = episodes

    def generate(self, model: ServedModel, gen: GenerationConfig) -> tuple[list[list[int]], list[list[float] | None]]:
        return model.complete([e.token_ids for e in self.episodes], gen)

    def drop_finished(self) -> None:
        self.episodes = [e for e in self.episodes if not e.done]


def _sampled_logprobs(logits, written, turns: list[list[int]], gen: GenerationConfig) -> list[list[float]]:
    """Each row's sampled tokens' log-probs under the raw logits
    at the sampling temperature (what RL's loss recomputes)."""
    import torch

    steps = torch.stack(logits, dim=1).float().cpu()  # (rows, new tokens, vocab)
    if gen.temperature > 0:
        steps = steps / gen.temperature
    chosen = torch.log_softmax(steps, dim=-1).gather(-1, written[:, : steps.shape[1], None]).squeeze(-1)
    return [chosen[row, : len(ids)].tolist() for row, ids in enumerate(turns)]
