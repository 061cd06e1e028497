"""Episode rewards for GRPO: named components, each weighted and switchable, plus guards against collapse.

A reward reads one finished episode as a trace row (:func:`labkit.data.trajectory_row`:
the same rows evaluation writes and the trace viewer shows), so any episode from any
policy can be scored, and a score can be explained turn by turn. The facts it reads
(trials, failed calls, repeats, budgets) are :class:`labkit.episode.Episode`'s, the
same ones the failure taxonomy reads.

Components (a weight of 0 switches one off):

- ``outcome``: 1 when the answer checks out, else 0. The one that matters.
- ``format``: the share of turns written in the lab's format (a phase tag, one call or
  an answer, valid JSON, finished before the token limit).
- ``exec_errors``: minus the share of execution-phase calls that failed. Errors while
  trying a tool are how a trial learns; errors after it are what trials should prevent.
- ``budget``: minus the share of the turn budget used, and -1 for running out of it.
  Every trial spends a turn, so a trial has to pay for itself.
- ``trial_info``: 1 when a trial met a tool the environment had changed (so the probe
  could reveal what the docs got wrong) and a call to execute then succeeded. A trial of
  an unchanged tool only confirms the docs: it earns nothing and costs a turn. Paying for
  every trial that is followed by a use would pay for the look of a trial.
- ``recovery``: minus the share of failed calls outside trials that were never put right
  (:func:`labkit.data.recoveries`). An episode without errors loses nothing, so fixing a
  mistake pays and making one never does (``exec_errors`` still costs it).

Guards (``guards``, one component with its own weight) penalise the ways an RL policy
learns to game the components above instead of solving tasks:

- ``no_call``: an episode without a single tool call, whether it guessed an answer or
  wrote nothing readable. Without it, tool calls disappear: a guess or a turn of noise
  never fails an execution call, so either outscores an honest agent whose calls fail on
  changed tools.
- ``trial_overflow``: each trial beyond ``max_trials``. Trials are free of
  ``exec_errors``, so a policy could trial forever.
- ``repeated_failure``: each call identical to the failing call just before it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from labkit.episode import Episode, Phase

COMPONENTS = ("outcome", "format", "exec_errors", "budget", "trial_info", "recovery", "guards")
GUARDS = ("no_call", "trial_overflow", "repeated_failure")


@dataclass
class RewardConfig:
    outcome: float = 1.0
    # format outweighs exec_errors so that a turn of unreadable text never pays better than a call that fails.
    format: float = 0.5
    exec_errors: float = 0.2
    budget: float = 0.2
    trial_info: float = 0.2
    recovery: float = 0.3
    guards: float = 1.0
    max_trials: int = 3  # trials beyond this many count as trial_overflow
    no_call_penalty: float = 0.5
    trial_overflow_penalty: float = 0.1  # per trial
    repeated_failure_penalty: float = 0.1  # per repeat

    def weights(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in COMPONENTS}

    def enabled(self) -> list[str]:
        return [name for name in COMPONENTS if getattr(self, name)]

    @classmethod
    def from_dict(cls, values: dict) -> RewardConfig:
        unknown = set(values) - set(asdict(cls()))
        if unknown:
            raise ValueError(f"unknown reward settings {sorted(unknown)}; known: {', '.join(asdict(cls()))}")
        return cls(**values)


@dataclass
class EpisodeReward:
    total: float
    components: dict[str, float]  # unweighted, one per COMPONENTS name
    guards: dict[str, int]  # how often each guard fired


def guard_counts(episode: Episode, config: RewardConfig) -> dict[str, int]:
    return {
        "no_call": int(not episode.made_a_call),
        "trial_overflow": max(0, len(episode.trials) - config.max_trials),
        "repeated_failure": len(episode.repeated_failures),
    }


def score_episode(
    row: dict, config: RewardConfig | None = None, max_turns: int = 8, problems: list[list[str]] | None = None
) -> EpisodeReward:
    """Score one finished episode.

    Args:
        row: a trace row (:func:`labkit.data.trajectory_row`).
        config: weights and guard settings.
        max_turns: the episode's turn budget, for the ``budget`` component.
        problems: per-turn format slips from the rollout (:class:`labkit.rollout.Rollout`);
            without them, only turns the environment could not read count as badly formatted.
    """
    config = config or RewardConfig()
    episode = Episode.from_row(row)
    if problems is None:
        problems = [["invalid"] if turn.phase == Phase.INVALID else [] for turn in episode.turns]
    executions = episode.executions
    changed = {change["tool"] for change in json.loads(row.get("changes") or "[]")}
    # A look-alike or a successor carries the changed tool's name in its own.
    met_change = any(name.startswith(tool) for name in episode.trialled_tools for tool in changed)
    guards = guard_counts(episode, config)
    components = {
        "outcome": float(episode.success),
        "format": sum(not p for p in problems) / max(1, len(problems)),
        "exec_errors": -sum(bool(turn.error) for turn in executions) / len(executions) if executions else 0.0,
        "budget": -1.0 if episode.out_of_budget else -min(1.0, len(episode.turns) / max(1, max_turns)),
        "trial_info": float(met_change and episode.execution_worked),
        "recovery": -(row["n_errors"] - row["n_recoveries"]) / row["n_errors"] if row["n_errors"] else 0.0,
        "guards": -(
            config.no_call_penalty * guards["no_call"]
            + config.trial_overflow_penalty * guards["trial_overflow"]
            + config.repeated_failure_penalty * guards["repeated_failure"]
        ),
    }
    total = sum(config.weights()[name] * value for name, value in components.items())
    return EpisodeReward(total, components, guards)


def group_advantages(rewards: list[float], scale: bool = True) -> np.ndarray:
    """GRPO's advantages for one group of rollouts of the same
    prompt, as TRL computes them (``scale_rewards="group"``)."""
    r = np.asarray(rewards, dtype=float)
    centred = r - r.mean()
    return centred / (r.std(ddof=1) + 1e-4) if scale and r.size > 1 else centred
