"""What a training run logs, read while it trains and after: the points live curves draw, a finished GRPO run's
step history from its card, and one group from its rollout log as the trainer scored it.
"""

from __future__ import annotations

import statistics
from typing import Callable

from labkit.rewards import COMPONENTS, GUARDS, RewardConfig


def rounded(value: float) -> float:
    """A figure for a table: three decimals, never -0.0."""
    return round(value, 3) + 0.0  # + 0.0 turns -0.0 into 0.0


def steps_text(row: dict) -> str:
    """What an episode did, turn by turn (``trial → execution ✗ → answer``); ✗ marks a turn whose call failed."""
    return " → ".join(f"{p} ✗" if e else p for p, e in zip(row["phases"], row["errors"])) or "(nothing)"


def live_loss(show: Callable[[list, dict], None]) -> tuple[list, Callable[[dict], None]]:
    """A ``train_sft(on_log=...)`` callback that collects
    ``[step, loss]`` points and calls ``show(points, logs)`` on each."""
    points: list = []

    def on_log(logs: dict) -> None:
        if "loss" in logs:
            points.append([logs["step"], logs["loss"]])
            show(points, logs)

    return points, on_log


def live_rl(show: Callable[[list, dict], None]) -> tuple[list, Callable[[dict], None]]:
    """A ``train_rl(on_log=...)`` callback that keeps one history
    entry per step and calls ``show(history, logs)`` on each."""
    history: list = []

    def on_log(logs: dict) -> None:
        if "reward" in logs:
            history.append({k: v for k, v in logs.items() if k != "max_steps"})
            show(history, logs)

    return history, on_log


def progress_line(logs: dict) -> str:
    """One line per GRPO step, for script mode (which shows no widgets) and above the live plot."""
    return (
        f"step {logs['step']}/{logs.get('max_steps', '?')}: reward "
        f"{logs['reward']:.3f}, success {logs.get('episode/success', 0):.2f}, "
        f"trials/episode {logs.get('episode/trials', 0):.2f}, groups "
        f"with one reward {logs.get('frac_reward_zero_std', 0):.0%}"
    )


def run_history(folder) -> list[dict] | None:
    """A finished GRPO run's per-step history from its
    ``run_card.json``, or None when the card or its history is missing."""
    from labkit.sft import read_run_card

    card = read_run_card(folder) if folder else None
    if card is None:
        return None
    return card.get("history") or None


def history_table(history: list[dict]) -> list[dict]:
    """One row per step: the reward, its components' means, success, trials, tool-call rate, guards fired, KL."""
    table = []
    for entry in history:
        row = {"step": entry["step"], "reward": entry.get("reward")}
        row |= {name: entry.get(f"rewards/{name}/mean") for name in COMPONENTS}
        row |= {
            "success": entry.get("episode/success"),
            "trials": entry.get("episode/trials"),
            "tool calls/turn": entry.get("episode/tool_call_rate"),
        }
        row |= {f"guard {g}": entry.get(f"guards/{g}") for g in GUARDS}
        row |= {"KL": entry.get("kl"), "groups with one reward": entry.get("frac_reward_zero_std")}
        table.append({k: rounded(v) if isinstance(v, float) else v for k, v in row.items()})
    return table


def zero_spread_share(history: list[dict]) -> float:
    """Share of the run's groups whose episodes all got the same reward: GRPO learns nothing from those."""
    values = [e["frac_reward_zero_std"] for e in history if e.get("frac_reward_zero_std") is not None]
    return sum(values) / len(values) if values else 0.0


def median_step_seconds(history: list[dict]) -> float | None:
    """A GRPO run's typical step time: the median, since one step slowed by a busy machine drags a mean far off."""
    times = [e["step_time"] for e in history if e.get("step_time")]
    return statistics.median(times) if times else None


def mean_turns(history: list[dict] | None) -> float | None:
    """Turns per episode over a GRPO run (what an estimate of the next run's generation can expect)."""
    turns = [e["episode/turns"] for e in history or [] if e.get("episode/turns")]
    return sum(turns) / len(turns) if turns else None


def logged_group(folder) -> list[dict]:
    """The last step's first group from a run's rollout log, as the
    trainer scored it: weighted components, reward, TRL's advantage."""
    from labkit.rl import read_rollout_log
    from labkit.sft import read_run_card

    rows = read_rollout_log(folder) if folder else []
    if not rows:
        return []
    card = read_run_card(folder)
    weights = (RewardConfig.from_dict(card["config"]["rewards"]) if card else RewardConfig()).weights()
    last = max(r["step"] for r in rows)
    group = [r for r in rows if r["step"] == last and r["group"] == 0]
    return [
        {
            "episode": i + 1,
            "step": r["step"],
            "turns": steps_text(r),
            "solved": bool(r["success"]),
            **{name: rounded(weights[name] * r["rewards"][name]) for name in COMPONENTS},
            "reward": rounded(r["reward"]),
            "advantage": rounded(r["advantage"]),
        }
        for i, r in enumerate(group)
    ]
