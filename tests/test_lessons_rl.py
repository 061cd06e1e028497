"""What notebook 04 (GRPO) shows: the reward playground, the collapse modes, the short run's curves."""

import json

import pytest
from matplotlib.figure import Figure

from labkit import lessons, plots
from labkit.data import trajectory_row
from labkit.env import EnvConfig, ToolEnv, run_episode
from labkit.policies import GuessingPolicy, RepeatingFailurePolicy, TrialFarmingPolicy
from labkit.rewards import COMPONENTS, RewardConfig
from labkit.tasks import load_tasks
from labkit.teachers.scripted import GoldenTeacher, TrialTeacher


@pytest.fixture(scope="module")
def evolved_tasks():
    return load_tasks("data/tasks/evolved.jsonl")[:30]


def scripted_group(catalog, task) -> lessons.Group:
    """A group whose episodes differ: the same task played by five scripted policies."""
    env = ToolEnv(catalog, EnvConfig(max_turns=6))
    policies = [TrialTeacher(), GoldenTeacher(), GuessingPolicy(), TrialFarmingPolicy(), RepeatingFailurePolicy()]
    rows = [trajectory_row(run_episode(env, policy, task), "scripted") for policy in policies]
    env.close()
    return lessons.Group(task, rows, [None] * len(rows), max_turns=6)


def test_rl_init_is_the_shipped_sft_adapter_at_cpu_size_or_says_why_not(tmp_path):
    assert lessons.rl_init("tiny")[0] == "tiny"
    init, note = lessons.rl_init("cpu", "data/adapters")
    assert init == "data/adapters/sft-trial" and "SFT-trial" in note
    init, note = lessons.rl_init("cpu", str(tmp_path))
    assert init == "smollm2-135m" and "not in" in note and "GRPO-only" in note


def test_play_group_plays_one_task_with_the_rl_budgets(catalog):
    from labkit.models import load_model

    task = load_tasks("data/tasks/train.jsonl")[0]
    group = lessons.play_group(load_model("tiny"), task, 3, "tiny", seed=1, catalog=catalog)
    assert len(group.rows) == len(group.problems) == 3 and group.max_turns == 3  # the tiny RL size's turn budget
    assert {row["task_id"] for row in group.rows} == {task.id} and group.rows[0]["policy"] == "tiny"
    assert all(len(problems) == len(row["phases"]) for problems, row in zip(group.problems, group.rows))
    table = lessons.score_group(group, RewardConfig())
    assert [r["episode"] for r in table] == [1, 2, 3]
    assert lessons.group_size("tiny") == 2 and lessons.group_size("cpu") >= 2


def test_score_group_splits_rewards_into_weighted_components_and_advantages(catalog, evolved_tasks):
    group = scripted_group(catalog, evolved_tasks[0])
    config = RewardConfig()
    table = lessons.score_group(group, config)
    for row in table:
        assert sum(row[name] for name in COMPONENTS) == pytest.approx(row["reward"], abs=0.01)
    assert sum(r["advantage"] for r in table) == pytest.approx(0, abs=0.01)
    best = max(table, key=lambda r: r["reward"])
    assert best["advantage"] == max(r["advantage"] for r in table) > 0
    assert (
        "trial" in table[0]["turns"] and table[2]["turns"] == "answer"
    )  # the trial teacher tries, the guesser answers
    assert table[2]["guards fired"] == "no_call ×1"
    assert isinstance(lessons.group_chart(table), Figure)


def test_switching_off_every_component_but_outcome_leaves_only_success(catalog, evolved_tasks):
    group = scripted_group(catalog, evolved_tasks[0])
    weights = RewardConfig().weights()
    only_outcome = lessons.reward_config(weights, {name: name == "outcome" for name in COMPONENTS})
    assert only_outcome.enabled() == ["outcome"]
    table = lessons.score_group(group, only_outcome)
    assert [r["reward"] for r in table] == [float(row["success"]) for row in group.rows]


def test_reward_config_reads_widgets_and_refuses_unknown_names():
    config = lessons.reward_config({"outcome": 1.0, "format": 0.7}, {"format": False}, max_trials=2)
    assert config.format == 0.0 and config.outcome == 1.0 and config.max_trials == 2
    assert lessons.reward_config({"format": 0.7}).format == 0.7  # no switches: everything on
    with pytest.raises(ValueError, match="unknown reward settings"):
        lessons.reward_config({"outcom": 1.0})


def test_doubling_every_weight_leaves_the_advantages_alone(catalog, evolved_tasks):
    group = scripted_group(catalog, evolved_tasks[0])
    before, after = lessons.scaled_weights_check(group, RewardConfig())
    assert before == pytest.approx(after, abs=0.01) and any(abs(a) > 0.1 for a in before)


def test_guards_turn_the_collapse_ranking_around(catalog, evolved_tasks):
    episodes = lessons.collapse_episodes(catalog, evolved_tasks)
    assert list(episodes) == ["trial teacher", "golden teacher", "guesser", "trial farmer", "repeater"]
    assert all(len(rows) == len(evolved_tasks) for rows in episodes.values())
    table = lessons.collapse_table(episodes, RewardConfig())
    by_policy = {r["policy"]: r for r in table}
    assert lessons.best_cheat(table, "off") == "guesser"  # without guards, guessing beats honest calls that fail
    assert lessons.best_cheat(table, "on") == "golden teacher"
    for hacker in ("guesser", "trial farmer", "repeater"):
        assert by_policy[hacker]["success"] == 0.0
        assert by_policy[hacker]["reward, guards on"] < by_policy[hacker]["reward, guards off"]
        assert by_policy[hacker]["reward, guards on"] < by_policy["golden teacher"]["reward, guards on"]
    assert by_policy["trial teacher"]["reward, guards on"] == max(r["reward, guards on"] for r in table)
    # The learner's own weights: guards switched off in the playground still show a "guards on" column.
    unguarded = {r["policy"]: r for r in lessons.collapse_table(episodes, RewardConfig(guards=0))}
    assert unguarded["guesser"]["reward, guards on"] == by_policy["guesser"]["reward, guards on"]
    assert isinstance(lessons.collapse_chart(table), Figure)


def test_live_rl_keeps_one_entry_per_step_and_shows_it():
    shown = []
    history, on_log = lessons.live_rl(lambda h, logs: shown.append((len(h), logs["step"])))
    on_log({"step": 1, "max_steps": 2, "reward": 0.5, "episode/success": 0.25, "frac_reward_zero_std": 0.5})
    on_log({"step": 1, "max_steps": 2, "train_runtime": 3.0})  # the trainer's closing log: no reward
    on_log({"step": 2, "max_steps": 2, "reward": 0.7})
    assert [e["step"] for e in history] == [1, 2] and shown == [(1, 1), (2, 2)] and "max_steps" not in history[0]
    line = lessons.progress_line(
        {"step": 1, "max_steps": 2, "reward": 0.5, "episode/success": 0.25, "frac_reward_zero_std": 0.5}
    )
    assert line == "step 1/2: reward 0.500, success 0.25, trials/episode 0.00, groups with one reward 50%"
    assert lessons.zero_spread_share(history) == 0.5 and lessons.zero_spread_share([]) == 0.0


def test_run_history_and_logged_group_read_a_run_folder(tmp_path):
    from labkit.rl import write_rollout_log

    assert lessons.run_history(tmp_path) is None and lessons.run_history(None) is None
    assert lessons.logged_group(tmp_path) == [] and lessons.logged_group(None) == []
    history = [
        {
            "step": 1,
            "reward": 0.25,
            "rewards/outcome/mean": 0.5,
            "episode/success": 0.5,
            "guards/no_call": 0.0,
            "kl": 0.0,
        }
    ]
    (tmp_path / "run_card.json").write_text(json.dumps({"config": {"rewards": {"format": 0.5}}}))
    assert lessons.run_history(tmp_path) is None  # a card without a history
    (tmp_path / "run_card.json").write_text(json.dumps({"config": {"rewards": {"format": 0.5}}, "history": history}))
    assert lessons.run_history(tmp_path) == history
    table = lessons.history_table(history)
    assert (
        table[0]["step"] == 1
        and table[0]["outcome"] == 0.5
        and table[0]["format"] is None
        and table[0]["guard no_call"] == 0.0
    )

    def row(reward, success):
        components = dict.fromkeys(COMPONENTS, 0.0) | {"outcome": float(success), "format": 1.0}
        return {
            "phases": ["execution", "answer"],
            "errors": ["", ""],
            "success": success,
            "reward": reward,
            "rewards": components,
        }

    write_rollout_log(tmp_path, 1, [row(0.0, False)] * 4, [0.0] * 4, 2)
    write_rollout_log(
        tmp_path, 2, [row(1.5, True), row(0.5, False), row(0.0, False), row(0.0, False)], [0.7, -0.7, 0.0, 0.0], 2
    )
    group = lessons.logged_group(tmp_path)
    assert [(r["step"], r["episode"], r["advantage"]) for r in group] == [(2, 1, 0.7), (2, 2, -0.7)]
    assert group[0]["format"] == 0.5 and group[0]["outcome"] == 1.0  # weighted by the run's own reward config
    assert group[0]["turns"] == "execution → answer"


def test_notebook_run_config_and_the_shipped_run(tmp_path):
    tiny = lessons.notebook_rl_config("tiny", "data", out_root=str(tmp_path))
    assert tiny.init == "tiny" and tiny.steps == 2 and tiny.tasks == "data/tasks/train.jsonl"
    assert tiny.out == f"{tmp_path}/tiny/{lessons.SHIPPED_RL}"
    cpu = lessons.notebook_rl_config("cpu", "data")
    assert cpu.init == "data/adapters/sft-trial" and cpu.steps == 4 and cpu.episodes_per_step <= 8
    folder, note = lessons.shipped_rl_status("cpu", str(tmp_path))
    assert folder is None and "No shipped GRPO run" in note and "labkit rl" in note
    (tmp_path / lessons.SHIPPED_RL).mkdir()
    (tmp_path / lessons.SHIPPED_RL / "adapter_config.json").write_text("{}")
    folder, note = lessons.shipped_rl_status("cpu", str(tmp_path))
    assert folder == str(tmp_path / lessons.SHIPPED_RL) and "until your own run finishes" in note
    folder, note = lessons.shipped_rl_status(
        "tiny", str(tmp_path)
    )  # results to read at any profile, labelled as the cpu run
    assert folder == str(tmp_path / lessons.SHIPPED_RL) and "trained at the cpu profile" in note


def test_the_notebook_short_run_feeds_live_curves_and_reads_back(tmp_path):
    from labkit.rl import train_rl

    config = lessons.notebook_rl_config("tiny", "data", out_root=str(tmp_path))
    config.report_to = "none"
    shown = []
    history, on_log = lessons.live_rl(lambda h, logs: shown.append(lessons.progress_line(logs)))
    train_rl(config, progress=False, on_log=on_log)
    assert len(history) == 2 and shown[-1].startswith("step 2/2")
    saved = lessons.run_history(config.out)
    assert [e["step"] for e in saved] == [1, 2] and saved[0]["reward"] == pytest.approx(history[0]["reward"])
    assert isinstance(plots.rl_curves({"this run": saved}), Figure)
    assert (
        len(lessons.history_table(saved)) == 2 and lessons.zero_spread_share(saved) == 1.0
    )  # tiny writes noise: one reward per group
    assert len(lessons.logged_group(config.out)) == config.num_generations


def test_the_shipped_group_rescored_under_its_own_weights_gives_the_logged_rewards():
    from labkit.rewards import RewardConfig
    from labkit.sft import read_run_card
    from labkit.tasks import load_tasks

    folder = "data/adapters/" + lessons.SHIPPED_RL
    group = lessons.logged_playground_group(folder, load_tasks("data/tasks/train.jsonl"))
    weights = RewardConfig.from_dict(read_run_card(folder)["config"]["rewards"])
    table = lessons.score_group(group, weights)
    assert [r["reward"] for r in table] == [round(row["reward"], 3) for row in group.rows]
    names = [n for n in table[0] if n in weights.weights()]
    assert all(abs(sum(r[n] for n in names) - r["reward"]) < 0.01 for r in table), "the weighted components add up"
    doubled = lessons.score_group(
        group,
        lessons.reward_config(
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
    assert lessons.logged_playground_group(None, []) is None


def test_the_shipped_runs_falling_success_is_explained_from_its_own_numbers():
    folder = "data/adapters/" + lessons.SHIPPED_RL
    history = lessons.run_history(folder)
    note = lessons.success_curve_note(folder)
    first, last = history[0]["episode/success"], history[-1]["episode/success"]
    assert f"from {first:.2f} at step 1 to {last:.2f} at step {len(history)}" in note and "just 16 episodes" in note
    assert "inside that noise" in note  # 0.44 -> 0.06 on 16 episodes a step
    assert lessons.success_curve_note(None) == ""
    # a typical step, not the first, which also started the rollout engine
    assert lessons.median_step_seconds(history) < history[0]["step_time"] == max(e["step_time"] for e in history)
    assert 1 <= lessons.mean_turns(history) <= 8
