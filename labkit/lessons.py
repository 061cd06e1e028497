"""The course and its feedback: the notebooks in order, how their "predict, then run" questions are graded, and the
words that explain each result.

What the lessons compute lives in the modules they teach (``labkit.tool_world``, ``labkit.teach``,
``labkit.eval_cache``, ``labkit.reward_playground``, ``labkit.run_logs``, ``labkit.notebook_runs``, ...); this module
keeps what a learner reads about it.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.evaluate import recovery_by_policy
from labkit.notebook_runs import SHIPPED_RL


@dataclass(frozen=True)
class Stage:
    notebook: str
    summary: str
    command: str
    ready: bool = False


COURSE = [
    Stage("00_welcome.py", "the idea, the path, your hardware", "labkit doctor", ready=True),
    Stage(
        "01_tool_world.py",
        "browse, call and evolve tools; sample tasks",
        "labkit tools list / tools evolve / tasks generate",
        ready=True,
    ),
    Stage("02_teacher_trajectories.py", "golden vs trial-and-execution trajectories", "labkit teach", ready=True),
    Stage("03_sft.py", "supervised fine-tuning on each kind of trajectory", "labkit sft / labkit ablation", ready=True),
    Stage(
        "04_rl_grpo.py",
        "GRPO in the live tool environment: rewards, advantages, collapse modes, a short run",
        "labkit rl",
        ready=True,
    ),
    Stage("05_evaluation.py", "metrics, baselines, robustness curve, failure taxonomy", "labkit eval", ready=True),
]


def grade_prediction(choice: str | None, correct: str, explanation: str) -> str:
    """Feedback for a "predict, then run" question, in Markdown."""
    if choice is None:
        return "*Make your prediction above, then read on.*"
    verdict = "**Right.**" if choice == correct else f"**Not quite:** the answer is *{correct}*."
    return f"{verdict} {explanation}"


# Options for "what share?" predictions: every share from 0 to 1 is within 0.15 of one of them.
SHARE_LABELS = {
    "almost none": 0.05,
    "about a third": 1 / 3,
    "about half": 0.5,
    "about two thirds": 2 / 3,
    "almost all": 0.95,
}


def closest_label(value: float, labels: dict[str, float]) -> str:
    """The label whose value is nearest ``value``: grades a prediction against a measured figure."""
    return min(labels, key=lambda label: abs(labels[label] - value))


# ----------------------------------------------------------------------------- notebook 02: teacher trajectories


def teacher_choice_note(teacher: str, split: str) -> str:
    """What a teacher/split choice really makes, where it is not what it looks like; '' otherwise."""
    if teacher == "golden" and split == "evolved":
        return (
            "The golden teacher works on **documented tools only** (it is the trajectory-centric baseline, which never "
            "meets a changed tool), so these evolved tasks were made at **level 0**: the card's levels say so. "
            "Pick the trial teacher to see trajectories on changed tools."
        )
    return ""


# ----------------------------------------------------------------------------- notebook 04: GRPO

REWARD_MEANINGS = {
    "outcome": "1 when the answer checks out, else 0: the one that matters",
    "format": (
        "share of turns written in the lab's format (a phase tag, one call or an answer, valid JSON, finished in time)"
    ),
    "exec_errors": (
        "minus the share of execution-phase calls that failed (failed trials are free: that is how a trial learns)"
    ),
    "budget": "minus the share of the turn budget used; -1 for running out of it",
    "trial_info": "1 when a trial met a tool the environment had changed and a call to execute then succeeded",
    "recovery": "minus the share of failed calls (outside trials) never put right",
    "guards": (
        "minus the penalties for gaming the others: no tool call at all, trials past the limit, a failing call repeated"
    ),
}


def best_cheat(table: list[dict], guards: str = "off") -> str:
    """``"guesser"`` when answering at once outscores the honest golden teacher, else ``"golden teacher"``."""
    reward = {r["policy"]: r[f"reward, guards {guards}"] for r in table}
    return "guesser" if reward["guesser"] > reward["golden teacher"] else "golden teacher"


def success_curve_note(folder) -> str:
    """Why a short GRPO run's success curve jumps about, computed
    from its card: each point is a handful of new episodes.

    Compares the first and last steps' success with the 95% interval a share of one step's episodes has.
    """
    import math

    from labkit.sft import read_run_card

    card = read_run_card(folder) if folder else None
    if not card or not card.get("history"):
        return ""
    history, episodes_per_step = card["history"], card["episodes_per_step"]
    successes = [e.get("episode/success", 0.0) for e in history]
    if len(successes) < 2:
        return ""
    first, last, mean = successes[0], successes[-1], sum(successes) / len(successes)
    half_width = 1.96 * math.sqrt(max(mean * (1 - mean), 1 / episodes_per_step) / episodes_per_step)
    moved = "fell" if last < first else "rose" if last > first else "stayed"
    verdict = (
        "well inside that noise: the curve says little about whether GRPO helped or hurt"
        if abs(last - first) <= 2 * half_width
        else "more than that noise: the run really changed"
    )
    return (
        f"Success {moved} from {first:.2f} at step 1 to {last:.2f} "
        f"at step {len(successes)}. Each point is the share of just "
        f"{episodes_per_step} episodes, on tasks drawn anew each step, so with a mean success of {mean:.2f} one point "
        f"carries a 95% interval of about ±{half_width:.2f}. A gap of {abs(last - first):.2f} is {verdict}. "
        "Read the reward and its components, and the held-out "
        "evaluation in notebook 05, rather than one step's success."
    )


# ----------------------------------------------------------------------------- notebook 05: evaluation


METRIC_MEANINGS = {
    "success": "share of episodes whose final answer passes the task's checker",
    "valid_call_rate": (
        "share of the calls made to do the task (not trials) that were "
        "well-formed for the tool as it really is (right name, parameters, types)"
    ),
    "trials_per_episode": "turns the agent itself labelled <trial>",
    "trial_then_use_rate": (
        "of episodes with a trial, the share that then used a trialled tool successfully in execution"
    ),
    "error_recovery_rate": "of failed calls outside trials, the share put right later by a successful call",
    "calls_per_episode": "tool calls per episode",
    "tokens_per_episode": "tokens the agent generated per episode",
}


def recovery_note(results: dict) -> str:
    """Error recovery explained from ``{(arm, split): metrics}``: each arm's rate and its commonest failure, in words.

    Rates pool the splits, weighted by episodes; an arm that made no failed call has nothing to recover from.
    """
    parts, low = [], []
    for arm, (rate, commonest) in recovery_by_policy(results).items():
        if rate is None:
            parts.append(f"{arm} n/a (no failed calls)")
            continue
        parts.append(f"{arm} {rate:.2f}" + (f" (commonest failure: `{commonest}`)" if commonest else ""))
        low.append(rate < 0.1)
    if not parts:
        return ""
    text = (
        "**Error recovery** (share of failed calls outside trials put right by a later successful one): "
        + "; ".join(parts)
        + ". "
    )
    if low and all(low):
        text += (
            "Near zero means the models rarely fix a call after an "
            "error. A model fine-tuned on trial trajectories writes "
            "`<trial>` turns, the *form* of the teacher's habit, but "
            "reading an error and changing the call is a skill a few "
            "minutes of SFT on a 135M model has not yet picked up: it tends to send the failing call again "
            "(`repeated_failing_call`) or answer anyway (`ignored_error`). Open such an episode in the trace viewer "
            "(`labkit view runs/eval-cache`) and compare it with the teacher's in notebook 02."
        )
    else:
        text += (
            "Where it is well above zero, the model read the error and changed "
            "its call: open such an episode in `labkit view runs/eval-cache`."
        )
    return text


TRAINED_LABELS = {
    "sft-golden": "SFT-golden",
    "sft-recover": "SFT-recover",
    "sft-trial": "SFT-trial",
    SHIPPED_RL: "SFT-trial + GRPO",
}
SAME_WITHIN = 0.05  # success gaps smaller than this, on a few dozen episodes, grade as "about the same"


def best_trained(pooled: dict[str, float]) -> str:
    """The prediction option a ``{arm: success}`` result answers:
    the best trained arm, or "about the same" when it barely leads."""
    ranked = sorted(((v, a) for a, v in pooled.items() if a in TRAINED_LABELS), reverse=True)
    if not ranked:
        return "none of them"
    if len(ranked) > 1 and ranked[0][0] - ranked[1][0] < SAME_WITHIN:
        return "about the same"
    return TRAINED_LABELS[ranked[0][1]]
