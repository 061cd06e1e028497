"""labkit.costs: rates measured on this machine, and the estimates notebooks show beside their buttons."""

import json
import time
from dataclasses import asdict, replace

import pytest

from labkit.costs import (
    Estimate,
    Speed,
    episodes_estimate,
    format_duration,
    grpo_estimate,
    measure_speed,
    measured_speed,
    sft_estimate,
)

SPEED = Speed(
    model="m",
    batch=8,
    train_tokens_per_s=100.0,
    prefill_s=2.0,
    decode_step_s=0.1,
    measured_in_s=1.0,
    measured_at=time.time(),
)


def test_measuring_the_tiny_model_gives_positive_rates_once_per_process():
    speed = measure_speed("tiny", "tiny", 2)
    assert speed.batch == 2 and speed.train_tokens_per_s > 0 and speed.prefill_s > 0 and speed.decode_step_s >= 0
    assert measure_speed("tiny", "tiny", 2) is speed, "a notebook measures once per model and batch"
    assert speed.turn_seconds(16) == pytest.approx(speed.prefill_s + 16 * speed.decode_step_s)


def test_notebooks_share_a_recent_measurement_and_retake_an_old_one(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    first = measured_speed("tiny", "tiny", 2)
    saved = tmp_path / "speed" / "tiny-tiny-batch2.json"
    assert Speed(**json.loads(saved.read_text())) == first
    shared = replace(first, prefill_s=123.0)  # what another notebook's kernel measured a minute ago
    saved.write_text(json.dumps(asdict(shared)))
    assert measured_speed("tiny", "tiny", 2) == shared and "measured here just now" in shared.measured_ago()
    saved.write_text(json.dumps(asdict(replace(shared, measured_at=time.time() - 3600))))
    assert measured_speed("tiny", "tiny", 2).prefill_s != 123.0, "an hour-old measurement is taken again"
    saved.write_text("{not json")
    assert measured_speed("tiny", "tiny", 2).prefill_s != 123.0


def test_sft_estimate_follows_the_measured_training_rate():
    estimate = sft_estimate(tokens=50_000, runs=2, speed=SPEED)
    assert estimate.typical_s == pytest.approx(1000.0) and estimate.at_most_s > estimate.typical_s
    assert "100 training tokens/s, measured here" in estimate.describe()


def test_episode_estimates_count_batches_and_turns():
    # 20 episodes at 8 a time: 3 batches; a turn: 2 s + 96 x 0.1 s = 11.6 s
    worst = episodes_estimate(20, max_turns=8, max_new_tokens=96, speed=SPEED)
    assert worst.at_most_s == pytest.approx(3 * 8 * 11.6) and worst.typical_s == pytest.approx(3 * 4 * 11.6)
    assert episodes_estimate(20, 8, 96, SPEED, typical_turns=2).typical_s == pytest.approx(3 * 2 * 11.6)
    assert episodes_estimate(0, 8, 96, SPEED).at_most_s == 0


def test_grpo_estimate_never_expects_more_than_its_bound():
    estimate = grpo_estimate(
        steps=2, episodes_per_step=4, max_turns=3, max_new_tokens=16, speed=SPEED, typical_turns=4.5
    )
    assert 0 < estimate.typical_s <= estimate.at_most_s
    assert grpo_estimate(4, 4, 3, 16, SPEED).at_most_s == pytest.approx(2 * estimate.at_most_s)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "1 s"),
        (40, "40 s"),
        (89, "89 s"),
        (91, "2 min"),
        (3540, "59 min"),
        (3600, "1 h 00 min"),
        (3700, "1 h 02 min"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_describe_gives_one_figure_when_typical_and_bound_agree():
    assert Estimate(60, 60, "b").describe() == "about **60 s** on this machine now (b)"
    assert "at most 3 min" in Estimate(60, 150, "b").describe()
