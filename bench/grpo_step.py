"""GRPO rollouts on CPU: the lab's rollout path against TRL's own tool loop.

The same seen-split tasks (one tool family, level 0, so the docs are the
tools' real signatures and TRL's loop can serve them) are played by the shipped
SFT-trial adapter on SmolLM2-135M, sampling at the cpu profile's temperature:
- baseline: GRPOTrainer's default multi-turn loop (``tools=``): it generates each turn
  for the episodes still calling tools, re-reading the whole transcript each time;
- labkit: the batched engine behind ``rollout_func`` (:class:`labkit.rl.EpisodeRollouts`),
  with the KV cache kept between turns.
Both give TRL prompt ids, completion ids and a tool mask; the ratio is model tokens
generated per second.

Where a whole GRPO step's time goes (generation, environment, training) is measured in
every run and written to its run card (``labkit rl``: ``time_shares``).

Run: python -m bench grpo
"""

from __future__ import annotations

import tempfile
import time

from labkit.models import load_model
from labkit.profiles import SHIPPED_INIT
from labkit.protocol import END_OF_TURN
from labkit.rl import EpisodeRollouts, RLRunConfig, episode_tokens
from labkit.tasks import load_tasks
from labkit.tools import load_catalog

FAMILY = "units"


def _tasks(n: int):
    return [t for t in load_tasks("data/tasks/seen.jsonl") if t.families == [FAMILY]][:n]


def _trl_tool_loop(loaded, tasks, catalog, config: RLRunConfig) -> dict:
    """GRPOTrainer's own loop over the family's functions; timed through its ``_generate``."""
    import trl.trainer.grpo_trainer as grpo_module
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from labkit.protocol import SYSTEM_PROMPT

    # TRL 1.15's tool loop reads message["role"], which a new-style response template's parse never sets;
    # the one adaptation the baseline needs to run at all.
    parse = grpo_module.parse_response
    grpo_module.parse_response = lambda *args, **kwargs: {"role": "assistant", **parse(*args, **kwargs)}

    prompts = [[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": t.query}] for t in tasks]
    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=len(tasks),
        num_generations=2,
        temperature=config.temperature,
        max_completion_length=config.max_length // 2,
        max_tool_calling_iterations=config.max_turns - 1,
        use_cpu=True,
        report_to="none",
    )
    trainer = GRPOTrainer(
        model=loaded.model,
        reward_funcs=[lambda completions, **_: [0.0] * len(completions)],
        args=args,
        train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
        processing_class=loaded.tokenizer,
        tools=[tool.func for tool in catalog.family(FAMILY)],
    )
    # TRL's per-batch step (_generate_and_score_completions) builds these before generating; this times generation
    # alone. These private names stay out of labkit/trl_compat.py: only this benchmark of TRL's own loop uses them.
    functions = {tool.func.__name__: tool.func for tool in catalog.family(FAMILY)}
    trainer._sync_tool_dicts, trainer._async_tool_dicts = [functions] * len(prompts), [{}] * len(prompts)
    trainer.model.eval()
    start = time.perf_counter()
    _, completion_ids, tool_mask, *_ = trainer._generate(prompts)
    seconds = time.perf_counter() - start
    model_tokens = (
        sum(sum(mask) for mask in tool_mask) if tool_mask is not None else sum(len(c) for c in completion_ids)
    )
    return {"arm": "TRL tool loop (baseline)", "seconds": seconds, "model_tokens": model_tokens, "episodes": len(tasks)}


def _labkit_rollouts(loaded, tasks, catalog, config: RLRunConfig) -> dict:
    rollouts = EpisodeRollouts(config, loaded.tokenizer, catalog)
    start = time.perf_counter()
    played = rollouts.play(loaded.model, tasks, step=0)
    seconds = time.perf_counter() - start
    eos = loaded.tokenizer.convert_tokens_to_ids(END_OF_TURN)
    model_tokens = sum(sum(episode_tokens(r, eos).env_mask) for r in played)
    return {
        "arm": "labkit engine (rollout_func)",
        "seconds": seconds,
        "model_tokens": model_tokens,
        "episodes": len(tasks),
        "env_seconds": sum(r.env_seconds for r in played),
    }


def run(n_tasks: int = 8) -> dict:
    config = RLRunConfig(profile="cpu", report_to="none")
    catalog = load_catalog()
    tasks = _tasks(n_tasks)
    loaded = load_model(SHIPPED_INIT)
    arms = [_trl_tool_loop(loaded, tasks, catalog, config), _labkit_rollouts(loaded, tasks, catalog, config)]
    for arm in arms:
        arm["tokens_per_s"] = arm["model_tokens"] / arm["seconds"]
    return {
        "tasks": n_tasks,
        "arms": arms,
        "ratio": arms[1]["tokens_per_s"] / arms[0]["tokens_per_s"],
        "config": config,
    }


def report(results: dict) -> str:
    c = results["config"]
    lines = [
        f"## GRPO rollouts: TRL's tool loop vs the lab's engine, {results['tasks']} seen '{FAMILY}' tasks,",
        f"shipped SFT-trial adapter on SmolLM2-135M (CPU), temperature {c.temperature}, up to {c.max_turns} turns",
        "",
        "| arm | seconds | model tokens | model tokens/s |",
        "|---|---|---|---|",
        *[
            f"| {a['arm']} | {a['seconds']:.1f} | {a['model_tokens']} | {a['tokens_per_s']:.1f} |"
            for a in results["arms"]
        ],
        "",
        f"labkit / TRL tool loop, model tokens per second: {results['ratio']:.2f}x",
        "command: python -m bench grpo",
    ]
    return "\n".join(lines)
