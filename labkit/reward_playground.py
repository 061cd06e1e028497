"""The reward playground: one GRPO group scored under any reward, and reward hackers scored with guards off and on.

A group is one task played several times, the way GRPO training plays it; :func:`score_group` splits each
episode's reward into weighted components and gives GRPO's advantage, so a learner can move the weights and watch
the advantages change while the episodes stay the same. The collapse modes put crafted policies that game the
reward (``labkit.policies``) beside the honest teachers under the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from labkit.data import trajectory_row
from labkit.env import EnvConfig, ToolEnv, run_episode
from labkit.policies import GuessingPolicy, RepeatingFailurePolicy, TrialFarmingPolicy
from labkit.profiles import get_profile
from labkit.rewards import COMPONENTS, EpisodeReward, RewardConfig, group_advantages, score_episode
from labkit.run_logs import rounded, steps_text
from labkit.tasks import Task
from labkit.teachers import GoldenTeacher, TrialTeacher
from labkit.tools.registry import Catalog


@dataclass
class Group:
    """One GRPO group: one task played several times by one policy, the way training plays it."""

    task: Task
    rows: list[dict]  # trace rows (labkit.data.trajectory_row), one per episode
    problems: list[list[list[str]]]  # per episode, per turn: the format slips the rollout engine saw
    max_turns: int
    logged: list[dict] | None = None  # per episode, the unweighted components a training run logged (a shipped group)


def logged_playground_group(folder, tasks: list[Task], group: int = 0) -> Group | None:
    """A group from a GRPO run's rollout log (the last step's), for the playground before any model has played.

    The run logged each episode's unweighted reward components, so reweighting them gives what the trainer would
    have scored under other weights. ``tasks`` are the run's training tasks. None when the run has no rollout log.
    """
    from labkit.rl import read_rollout_log
    from labkit.sft import read_run_card

    rows = read_rollout_log(folder) if folder else []
    if not rows:
        return None
    last = max(r["step"] for r in rows)
    episodes = [r for r in rows if r["step"] == last and r["group"] == group]
    card = read_run_card(folder) or {}
    task = next(t for t in tasks if t.id == episodes[0]["task_id"])
    max_turns = card.get("config", {}).get("max_turns", 8)
    return Group(task, episodes, [[] for _ in episodes], max_turns, logged=[r["rewards"] for r in episodes])


def group_size(profile: str) -> int:
    """Episodes per group in the profile's GRPO runs: what the playground plays at first."""
    return get_profile(profile).rl.num_generations


def task_options(tasks: list[Task], n: int = 12) -> dict[str, int]:
    """``{label: index}`` for a dropdown of the first ``n`` tasks; the label says whether the tools changed."""
    return {f"{t.query[:70]} (level {t.level})": i for i, t in enumerate(tasks[:n])}


def play_group(loaded, task: Task, n: int, profile: str, seed: int = 0, catalog: Catalog | None = None) -> Group:
    """Play ``task`` ``n`` times with a model through the rollout engine, with the RL size's budgets and temperature."""
    from labkit.rollout import GenerationConfig, rollout_batch

    size = get_profile(profile).rl
    gen = GenerationConfig(
        max_new_tokens=size.max_new_tokens,
        temperature=size.temperature,
        batch_size=n,
        max_length=size.max_length,
        seed=seed,
    )
    rollouts = rollout_batch(
        loaded.model, loaded.tokenizer, [task] * n, catalog, EnvConfig(max_turns=size.max_turns), gen, progress=False
    )
    return Group(
        task,
        [trajectory_row(r.trajectory, loaded.name) for r in rollouts],
        [r.problems for r in rollouts],
        size.max_turns,
    )


def reward_config(weights: dict[str, float], switches: dict[str, bool] | None = None, **guard_settings) -> RewardConfig:
    """The reward the playground's widgets describe: a component switched off weighs 0."""
    switches = switches or {}
    return RewardConfig.from_dict(
        {name: (weight if switches.get(name, True) else 0.0) for name, weight in weights.items()} | guard_settings
    )


def score_group(group: Group, config: RewardConfig) -> list[dict]:
    """One row per episode: what it did, each component's weighted share of the reward, the reward, and its advantage.

    The weighted shares add up to the reward; the advantages are GRPO's: the group's rewards centred and scaled.
    """
    if group.logged is not None:
        weights = config.weights()
        scores = [
            EpisodeReward(sum(weights[n] * v for n, v in parts.items()), parts, row["guards"])
            for row, parts in zip(group.rows, group.logged)
        ]
    else:
        scores = [
            score_episode(row, config, group.max_turns, problems) for row, problems in zip(group.rows, group.problems)
        ]
    advantages = group_advantages([s.total for s in scores])
    weights = config.weights()
    return [
        {
            "episode": i + 1,
            "turns": steps_text(row),
            "answer": row["answer"][:40],
            "solved": bool(row["success"]),
            **{name: rounded(weights[name] * score.components[name]) for name in COMPONENTS},
            "reward": rounded(score.total),
            "advantage": rounded(float(advantage)),
            "guards fired": ", ".join(f"{g} ×{n}" for g, n in score.guards.items() if n) or "-",
        }
        for i, (row, score, advantage) in enumerate(zip(group.rows, scores, advantages))
    ]


def scaled_weights_check(group: Group, config: RewardConfig, factor: float = 2.0) -> tuple[list[float], list[float]]:
    """The group's advantages under ``config`` and under every weight times ``factor``: GRPO's scaling cancels it."""
    scaled = replace(config, **{name: getattr(config, name) * factor for name in COMPONENTS})
    return [r["advantage"] for r in score_group(group, config)], [r["advantage"] for r in score_group(group, scaled)]


COLLAPSE_MAX_TURNS = (
    6  # the turn budget tests/test_rewards.py checks the hackers at: room for the trial farmer to pass max_trials
)


# The collapse modes: crafted policies that game the reward, next to the two honest teachers.


def collapse_policies() -> dict[str, object]:
    """The two honest teachers and the three reward hackers, by the names the collapse table gives them."""
    return {
        "trial teacher": TrialTeacher(),
        "golden teacher": GoldenTeacher(),
        "guesser": GuessingPolicy(),
        "trial farmer": TrialFarmingPolicy(),
        "repeater": RepeatingFailurePolicy(),
    }


def collapse_episodes(
    catalog: Catalog, tasks: list[Task], max_turns: int = COLLAPSE_MAX_TURNS
) -> dict[str, list[dict]]:
    """Every policy of :func:`collapse_policies` on every task, in the real environment: ``{policy: trace rows}``."""
    env = ToolEnv(catalog, EnvConfig(max_turns=max_turns))
    try:
        return {
            name: [trajectory_row(run_episode(env, policy, task), name) for task in tasks]
            for name, policy in collapse_policies().items()
        }
    finally:
        env.close()


def collapse_table(
    episodes: dict[str, list[dict]], config: RewardConfig, max_turns: int = COLLAPSE_MAX_TURNS
) -> list[dict]:
    """Mean reward of each policy under ``config`` with its guards off and on, next to its success rate."""
    settings = {"off": replace(config, guards=0.0), "on": replace(config, guards=config.guards or 1.0)}
    table = []
    for name, rows in episodes.items():
        entry = {"policy": name, "success": rounded(sum(r["success"] for r in rows) / len(rows))}
        for guards, setting in settings.items():
            entry[f"reward, guards {guards}"] = rounded(
                sum(score_episode(r, setting, max_turns).total for r in rows) / len(rows)
            )
        table.append(entry)
    return table
