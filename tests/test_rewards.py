"""Reward components, guards, and crafted reward-hacking policies in the real environment."""

import json

import numpy as np
import pytest

from labkit.data import trajectory_row
from labkit.env import EnvConfig, ToolEnv, run_episode
from labkit.policies import GuessingPolicy as Guesser
from labkit.policies import RepeatingFailurePolicy as Repeater
from labkit.policies import TrialFarmingPolicy as TrialFarmer
from labkit.rewards import COMPONENTS, RewardConfig, group_advantages, score_episode
from labkit.tasks import load_tasks
from labkit.teachers.scripted import GoldenTeacher, TrialTeacher

MAX_TURNS = 6


@pytest.fixture(scope="module")
def evolved_tasks():
    return load_tasks("data/tasks/evolved.jsonl")[:30]


def mean_reward(policy, tasks, catalog, config: RewardConfig) -> float:
    env = ToolEnv(catalog, EnvConfig(max_turns=MAX_TURNS))
    try:
        rows = [trajectory_row(run_episode(env, policy, task), "test") for task in tasks]
    finally:
        env.close()
    return float(np.mean([score_episode(row, config, MAX_TURNS).total for row in rows]))


def row(phases, errors, called, success=False, end_reason="answered", arguments=None, changed=("f",), recovered=0):
    arguments = arguments or ["{}"] * len(phases)
    messages = [{"role": "system", "content": ""}, {"role": "user", "content": "q"}]
    for phase, name, args in zip(phases, called, arguments):
        call = [{"type": "function", "function": {"name": name, "arguments": args}}] if name else None
        messages.append({"role": "assistant", "content": phase, "tool_calls": call})
    n_errors = sum(bool(e) and p != "trial" for p, e in zip(phases, errors))
    changes = json.dumps([{"operator": "rename_parameter", "tool": name, "detail": ""} for name in changed])
    return {
        "phases": phases,
        "errors": errors,
        "tools_called": called,
        "success": success,
        "end_reason": end_reason,
        "messages": messages,
        "changes": changes,
        "n_errors": n_errors,
        "n_recoveries": recovered,
    }


def test_components_of_a_clean_trial_then_use_episode():
    r = row(["trial", "execution", "answer"], ["", "", ""], ["f", "f", ""], success=True)
    score = score_episode(r, RewardConfig(), max_turns=6)
    assert score.components == {
        "outcome": 1.0,
        "format": 1.0,
        "exec_errors": 0.0,
        "budget": -0.5,
        "trial_info": 1.0,
        "recovery": 0.0,
        "guards": 0.0,
    }
    assert score.total == pytest.approx(1.0 + 0.5 + 0.0 - 0.1 + 0.2)


def test_a_trial_pays_only_where_it_could_learn_something_and_recovery_only_repairs():
    clean = dict(phases=["trial", "execution", "answer"], errors=["", "", ""], called=["f", "f", ""], success=True)
    assert score_episode(row(**clean, changed=())).components["trial_info"] == 0.0, (
        "a trial of an unchanged tool only confirms the docs"
    )
    assert score_episode(row(**clean, changed=("f",))).components["trial_info"] == 1.0
    assert (
        score_episode(row(**{**clean, "called": ["f_beta", "f", ""]}, changed=("f",))).components["trial_info"] == 1.0
    ), "a look-alike of a changed tool"
    slip = dict(
        phases=["execution", "execution", "answer"],
        errors=["unknown_parameter", "", ""],
        called=["f", "f", ""],
        success=True,
    )
    fixed, left = (
        score_episode(row(**slip, recovered=1)),
        score_episode(row(**{**slip, "errors": ["unknown_parameter", "unknown_parameter", ""]})),
    )
    assert fixed.components["recovery"] == 0.0 and left.components["recovery"] == -1.0
    no_slip = score_episode(row(phases=["execution", "answer"], errors=["", ""], called=["f", ""], success=True))
    assert no_slip.total > fixed.total, "making a mistake and fixing it never beats making none"


def test_execution_errors_count_and_trial_errors_do_not():
    r = row(
        ["trial", "execution", "execution", "answer"], ["wrong_type", "unknown_parameter", "", ""], ["f", "f", "f", ""]
    )
    assert score_episode(r, max_turns=8).components["exec_errors"] == -0.5


def test_running_out_of_budget_costs_the_most():
    r = row(
        ["execution"] * 3,
        ["", "", ""],
        ["f", "g", "h"],
        end_reason="budget_turns",
        arguments=['{"a": 1}', '{"a": 2}', '{"a": 3}'],
    )
    assert score_episode(r, max_turns=3).components["budget"] == -1.0


def test_format_reads_the_rollouts_per_turn_problems():
    r = row(["execution", "answer"], ["", ""], ["f", ""])
    assert score_episode(r, problems=[["no_phase"], []]).components["format"] == 0.5


def test_guards_fire_on_what_they_name():
    config = RewardConfig(max_trials=2)
    guess = score_episode(row(["answer"], [""], [""]), config)
    assert guess.guards == {"no_call": 1, "trial_overflow": 0, "repeated_failure": 0}
    noise = score_episode(row(["invalid"] * 3, ["bad_format"] * 3, [""] * 3, end_reason="budget_turns"), config)
    assert noise.guards["no_call"] == 1
    farm = score_episode(row(["trial"] * 5, [""] * 5, ["f"] * 5, end_reason="budget_turns"), config)
    assert farm.guards["trial_overflow"] == 3
    repeat = score_episode(row(["execution"] * 3 + ["answer"], ["wrong_type"] * 3 + [""], ["f"] * 3 + [""]), config)
    assert repeat.guards["repeated_failure"] == 2
    assert repeat.components["guards"] == pytest.approx(-2 * config.repeated_failure_penalty)


def test_a_zero_weight_switches_a_component_off():
    r = row(["trial", "execution", "answer"], ["", "", ""], ["f", "f", ""], success=True)
    only_outcome = RewardConfig(format=0, exec_errors=0, budget=0, trial_info=0, recovery=0, guards=0)
    assert score_episode(r, only_outcome).total == 1.0
    assert only_outcome.enabled() == ["outcome"]
    assert set(RewardConfig().enabled()) == set(COMPONENTS)


def test_unknown_reward_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="unknown reward settings \\['outcom'\\]"):
        RewardConfig.from_dict({"outcom": 1.0})


def test_group_advantages_match_trl():
    torch = pytest.importorskip("torch")
    rewards = [1.0, 0.2, 0.2, -0.5]
    r = torch.tensor(rewards)
    expected = (r - r.mean()) / (r.std() + 1e-4)  # GRPOTrainer, scale_rewards="group"
    assert np.allclose(group_advantages(rewards), expected.numpy(), atol=1e-6)
    assert np.allclose(group_advantages([0.3, 0.3, 0.3]), 0.0)  # a group with one reward teaches nothing


def test_the_no_call_guard_stops_guessing_from_beating_an_honest_agent(catalog, evolved_tasks):
    """Without guards, answering at once outscores an agent that calls tools and fails on changed ones."""
    unguarded, guarded = RewardConfig(guards=0), RewardConfig()
    honest = mean_reward(GoldenTeacher(), evolved_tasks, catalog, unguarded)
    assert mean_reward(Guesser(), evolved_tasks, catalog, unguarded) > honest
    assert mean_reward(Guesser(), evolved_tasks, catalog, guarded) < mean_reward(
        GoldenTeacher(), evolved_tasks, catalog, guarded
    )


@pytest.mark.parametrize("hacker", [Guesser, TrialFarmer, Repeater])
def test_reward_hacking_policies_score_below_the_trial_teacher(catalog, evolved_tasks, hacker):
    config = RewardConfig()
    teacher = mean_reward(TrialTeacher(), evolved_tasks, catalog, config)
    assert mean_reward(hacker(), evolved_tasks, catalog, config) < teacher - 1.0
    assert mean_reward(hacker(), evolved_tasks, catalog, config) < mean_reward(
        GoldenTeacher(), evolved_tasks, catalog, config
    )
