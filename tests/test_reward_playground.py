"""The reward playground (notebook 04): a GRPO group scored under any weights, and the collapse modes."""

import pytest
from matplotlib.figure import Figure

from labkit import lessons, notebook_runs, plots, reward_playground
from labkit.data import trajectory_row
from labkit.env import EnvConfig, ToolEnv, run_episode
from labkit.policies import GuessingPolicy, RepeatingFailurePolicy, TrialFarmingPolicy
from labkit.rewards import COMPONENTS, RewardConfig
from labkit.tasks import load_tasks
from labkit.teachers.scripted import GoldenTeacher, TrialTeacher


@pytest.fixture(scope="module")
def evolved_tasks():
    return load_tasks("data/tasks/evolved.jsonl")[:30]


def scripted_group(catalog, task) -> reward_playground.Group:
    """A group whose episodes differ: the same task played by five scripted policies."""
    env = ToolEnv(catalog, EnvConfig(max_turns=6))
    policies = [TrialTeacher(), GoldenTeacher(), GuessingPolicy(), TrialFarmingPolicy(), RepeatingFailurePolicy()]
    rows = [trajectory_row(run_episode(env, policy, task), "scripted") for policy in policies]
    env.close()
    return reward_playground.Group(task, rows, [None] * len(rows), max_turns=6)


def test_play_group_plays_one_task_with_the_rl_budgets(catalog):
    from labkit.models import load_model

    task = load_tasks("data/tasks/train.jsonl")[0]
    group = reward_playground.play_group(load_model("tiny"), task, 3, "tiny", seed=1, catalog=catalog)
    assert len(group.rows) == len(group.problems) == 3 and group.max_turns == 3  # the tiny RL size's turn budget
    assert {row["task_id"] for row in group.rows} == {task.id} and group.rows[0]["policy"] == "tiny"
    assert all(len(problems) == len(row["phases"]) for problems, row in zip(group.problems, group.rows))
    table = reward_playground.score_group(group, RewardConfig())
    assert [r["episode"] for r in table] == [1, 2, 3]
    assert reward_playground.group_size("tiny") == 2 and reward_playground.group_size("cpu") >= 2


def test_score_group_splits_rewards_into_weighted_components_and_advantages(catalog, evolved_tasks):
    group = scripted_group(catalog, evolved_tasks[0])
    config = RewardConfig()
    table = reward_playground.score_group(group, config)
    for row in table:
        assert sum(row[name] for name in COMPONENTS) == pytest.approx(row["reward"], abs=0.01)
    assert sum(r["advantage"] for r in table) == pytest.approx(0, abs=0.01)
    best = max(table, key=lambda r: r["reward"])
    assert best["advantage"] == max(r["advantage"] for r in table) > 0
    assert (
        "trial" in table[0]["turns"] and table[2]["turns"] == "answer"
    )  # the trial teacher tries, the guesser answers
    assert table[2]["guards fired"] == "no_call ×1"
    assert isinstance(plots.group_chart(table), Figure)


def test_switching_off_every_component_but_outcome_leaves_only_success(catalog, evolved_tasks):
    group = scripted_group(catalog, evolved_tasks[0])
    weights = RewardConfig().weights()
    only_outcome = reward_playground.reward_config(weights, {name: name == "outcome" for name in COMPONENTS})
    assert only_outcome.enabled() == ["outcome"]
    table = reward_playground.score_group(group, only_outcome)
    assert [r["reward"] for r in table] == [float(row["success"]) for row in group.rows]


def test_reward_config_reads_widgets_and_refuses_unknown_names():
    config = reward_playground.reward_config({"outcome": 1.0, "format": 0.7}, {"format": False}, max_trials=2)
    assert config.format == 0.0 and config.outcome == 1.0 and config.max_trials == 2
    assert reward_playground.reward_config({"format": 0.7}).format == 0.7  # no switches: everything on
    with pytest.raises(ValueError, match="unknown reward settings"):
        reward_playground.reward_config({"outcom": 1.0})


def test_doubling_every_weight_leaves_the_advantages_alone(catalog, evolved_tasks):
    group = scripted_group(catalog, evolved_tasks[0])
    before, after = reward_playground.scaled_weights_check(group, RewardConfig())
    assert before == pytest.approx(after, abs=0.01) and any(abs(a) > 0.1 for a in before)


def test_guards_turn_the_collapse_ranking_around(catalog, evolved_tasks):
    episodes = reward_playground.collapse_episodes(catalog, evolved_tasks)
    assert list(episodes) == ["trial teacher", "golden teacher", "guesser", "trial farmer", "repeater"]
    assert all(len(rows) == len(evolved_tasks) for rows in episodes.values())
    table = reward_playground.collapse_table(episodes, RewardConfig())
    by_policy = {r["policy"]: r for r in table}
    assert lessons.best_cheat(table, "off") == "guesser"  # without guards, guessing beats honest calls that fail
    assert lessons.best_cheat(table, "on") == "golden teacher"
    for hacker in ("guesser", "trial farmer", "repeater"):
        assert by_policy[hacker]["success"] == 0.0
        assert by_policy[hacker]["reward, guards on"] < by_policy[hacker]["reward, guards off"]
        assert by_policy[hacker]["reward, guards on"] < by_policy["golden teacher"]["reward, guards on"]
    assert by_policy["trial teacher"]["reward, guards on"] == max(r["reward, guards on"] for r in table)
    # The learner's own weights: guards switched off in the playground still show a "guards on" column.
    unguarded = {r["policy"]: r for r in reward_playground.collapse_table(episodes, RewardConfig(guards=0))}
    assert unguarded["guesser"]["reward, guards on"] == by_policy["guesser"]["reward, guards on"]
    assert isinstance(plots.collapse_chart(table), Figure)


def test_the_shipped_group_rescored_under_its_own_weights_gives_the_logged_rewards():
    from labkit.rewards import RewardConfig
    from labkit.sft import read_run_card
    from labkit.tasks import load_tasks

    folder = "data/adapters/" + notebook_runs.SHIPPED_RL
    group = reward_playground.logged_playground_group(folder, load_tasks("data/tasks/train.jsonl"))
    weights = RewardConfig.from_dict(read_run_card(folder)["config"]["rewards"])
    table = reward_playground.score_group(group, weights)
    assert [r["reward"] for r in table] == [round(row["reward"], 3) for row in group.rows]
    names = [n for n in table[0] if n in weights.weights()]
    assert all(abs(sum(r[n] for n in names) - r["reward"]) < 0.01 for r in table), "the weighted components add up"
    doubled = reward_playground.score_group(
        group,
        reward_playground.reward_config(
            {
                "outcome": 1.0,
                "format": 1.0,
                "exec_errors": 0.2,
                "budget": 0.2,
                "trial_info": 0.2,
                "recovery": 0.3,
                "guards": 1.0,
            }
        ),
    )
    # Each share is rounded to 3 decimals, so twice a rounded share may differ from the rounded double by 0.001.
    assert [r["format"] for r in doubled] == pytest.approx([2 * r["format"] for r in table], abs=1.01e-3)
    assert reward_playground.logged_playground_group(None, []) is None
