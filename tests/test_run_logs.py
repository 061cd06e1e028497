"""What a training run logs, read live and afterwards: loss points, GRPO step histories, a logged group."""

import json

import pytest
from matplotlib.figure import Figure

from labkit import notebook_runs, plots, run_logs
from labkit.rewards import COMPONENTS


def test_live_loss_collects_points_and_calls_show():
    shown = []
    points, on_log = run_logs.live_loss(lambda pts, logs: shown.append((len(pts), logs["step"])))
    for step, logs in enumerate([{"loss": 2.0}, {"learning_rate": 1e-3}, {"loss": 1.5}], 1):
        on_log({"step": step, **logs})
    assert points == [[1, 2.0], [3, 1.5]] and shown == [(1, 1), (2, 3)]


def test_live_rl_keeps_one_entry_per_step_and_shows_it():
    shown = []
    history, on_log = run_logs.live_rl(lambda h, logs: shown.append((len(h), logs["step"])))
    on_log({"step": 1, "max_steps": 2, "reward": 0.5, "episode/success": 0.25, "frac_reward_zero_std": 0.5})
    on_log({"step": 1, "max_steps": 2, "train_runtime": 3.0})  # the trainer's closing log: no reward
    on_log({"step": 2, "max_steps": 2, "reward": 0.7})
    assert [e["step"] for e in history] == [1, 2] and shown == [(1, 1), (2, 2)] and "max_steps" not in history[0]
    line = run_logs.progress_line(
        {"step": 1, "max_steps": 2, "reward": 0.5, "episode/success": 0.25, "frac_reward_zero_std": 0.5}
    )
    assert line == "step 1/2: reward 0.500, success 0.25, trials/episode 0.00, groups with one reward 50%"
    assert run_logs.zero_spread_share(history) == 0.5 and run_logs.zero_spread_share([]) == 0.0


def test_run_history_and_logged_group_read_a_run_folder(tmp_path):
    from labkit.rl import write_rollout_log

    assert run_logs.run_history(tmp_path) is None and run_logs.run_history(None) is None
    assert run_logs.logged_group(tmp_path) == [] and run_logs.logged_group(None) == []
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
    assert run_logs.run_history(tmp_path) is None  # a card without a history
    (tmp_path / "run_card.json").write_text(json.dumps({"config": {"rewards": {"format": 0.5}}, "history": history}))
    assert run_logs.run_history(tmp_path) == history
    table = run_logs.history_table(history)
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
    group = run_logs.logged_group(tmp_path)
    assert [(r["step"], r["episode"], r["advantage"]) for r in group] == [(2, 1, 0.7), (2, 2, -0.7)]
    assert group[0]["format"] == 0.5 and group[0]["outcome"] == 1.0  # weighted by the run's own reward config
    assert group[0]["turns"] == "execution → answer"


def test_the_notebook_short_run_feeds_live_curves_and_reads_back(tmp_path):
    from labkit.rl import train_rl

    config = notebook_runs.notebook_rl_config("tiny", "data", out_root=str(tmp_path))
    config.report_to = "none"
    shown = []
    history, on_log = run_logs.live_rl(lambda h, logs: shown.append(run_logs.progress_line(logs)))
    train_rl(config, progress=False, on_log=on_log)
    assert len(history) == 2 and shown[-1].startswith("step 2/2")
    saved = run_logs.run_history(config.out)
    assert [e["step"] for e in saved] == [1, 2] and saved[0]["reward"] == pytest.approx(history[0]["reward"])
    assert isinstance(plots.rl_curves({"this run": saved}), Figure)
    assert (
        len(run_logs.history_table(saved)) == 2 and run_logs.zero_spread_share(saved) == 1.0
    )  # tiny writes noise: one reward per group
    assert len(run_logs.logged_group(config.out)) == config.num_generations
