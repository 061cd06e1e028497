"""labkit.episode: the turns of a trace row, and the facts that rewards, the failure taxonomy and the metrics share."""

import pytest
from test_evaluate import capital_task, changed_by, scripted  # the failure taxonomy's tests play the same episodes

from labkit.data import trajectory_row
from labkit.env import PHASES, Answer, EnvConfig, Invalid, ToolCall, ToolEnv, run_episode
from labkit.episode import EndReason, Episode, Phase, TurnKind, episode_turns, out_of_budget, turn_calls
from labkit.evaluate import bootstrap_metrics, classify_failure
from labkit.policies import GuessingPolicy, RepeatingFailurePolicy, TrialFarmingPolicy
from labkit.rewards import RewardConfig, score_episode
from labkit.rollout import BUDGET_LENGTH
from labkit.tasks import generate_tasks
from labkit.teachers import GoldenTeacher, TrialTeacher

CAPITAL = ToolCall("get_capital", {"country": "Japan"}, "execution")  # the documented call


@pytest.fixture(scope="module")
def renamed(catalog):
    """A get_capital task whose ``country`` parameter was renamed, so the documented call fails."""
    return changed_by(catalog, 1, "rename_parameter")


def test_phases_and_end_reasons_are_the_ones_the_environment_writes(catalog):
    assert set(PHASES) <= set(Phase) and BUDGET_LENGTH == EndReason.BUDGET_LENGTH
    cases = {
        EndReason.ANSWERED: ([CAPITAL, Answer("Tokyo")], None),
        EndReason.BUDGET_CALLS: ([CAPITAL, CAPITAL], EnvConfig(max_calls=1)),
        EndReason.BUDGET_TURNS: ([Invalid("??", "no action")] * 2, EnvConfig(max_turns=2)),
        EndReason.BUDGET_TOKENS: ([CAPITAL], EnvConfig(max_tokens=5)),
    }
    for reason, (actions, config) in cases.items():
        episode = Episode.from_row(scripted(catalog, capital_task(), actions, config))
        assert episode.end_reason == reason
        assert episode.out_of_budget == out_of_budget(reason) == (reason != EndReason.ANSWERED)


def test_a_turn_holds_its_call_its_observation_and_its_error(catalog, renamed):
    probe = ToolCall("get_capital", {"country": "France"}, "trial")
    row = scripted(catalog, renamed, [probe, CAPITAL, Invalid("??", "no action"), Answer("Kyoto")])
    turns = Episode.from_row(row).turns
    assert [t.phase for t in turns] == row["phases"] == [Phase.TRIAL, Phase.EXECUTION, Phase.INVALID, Phase.ANSWER]
    assert [t.error for t in turns] == row["errors"] == ["unknown_parameter", "unknown_parameter", "bad_format", ""]
    assert [t.tool for t in turns] == row["tools_called"]
    assert [t.kind for t in turns] == [TurnKind.TRIAL, TurnKind.ERROR, TurnKind.ERROR, TurnKind.ANSWER]
    assert turns[1].call == ("get_capital", '{"country": "Japan"}') and turns[1].number == 2
    assert turns[2].observation.startswith('{"error"') and turns[3].observation is None
    assert turn_calls(row) == [t.call for t in turns] and turns[3].call == ("", None)
    # A row without the per-turn columns is read from its observations: the same errors.
    bare = {k: v for k, v in row.items() if k not in ("phases", "errors")}
    assert [t.error for t in episode_turns(bare)] == row["errors"]
    with pytest.raises(KeyError):
        Episode.from_row(bare)  # the episode's facts rest on the phases the environment recorded


def test_trialled_tools_called_and_used(catalog, renamed):
    probe = ToolCall("get_capital", {"country": "France"}, "trial")
    failed_use = scripted(catalog, renamed, [probe, CAPITAL, Answer("Kyoto")])
    other_tool = scripted(
        catalog, capital_task(), [ToolCall("get_population", {"country": "Japan"}, "trial"), CAPITAL, Answer("Kyoto")]
    )
    task = generate_tasks("evolved", 1, seed=2, level=3, catalog=catalog)[0]
    env = ToolEnv(catalog)
    teacher_row, golden_row = (
        trajectory_row(run_episode(env, p, task), "teacher") for p in (TrialTeacher(), GoldenTeacher())
    )
    env.close()

    episode = Episode.from_row(failed_use)
    assert episode.trialled_tools == {"get_capital"} and episode.called_trialled_tool and not episode.used_trialled_tool
    assert classify_failure(failed_use) == "ignored_error"
    episode = Episode.from_row(other_tool)
    assert (
        episode.trialled_tools == {"get_population"}
        and not episode.called_trialled_tool
        and not episode.used_trialled_tool
    )
    assert classify_failure(other_tool) == "tried_but_not_used"
    teacher, golden = Episode.from_row(teacher_row), Episode.from_row(golden_row)
    assert teacher.trialled_tools and teacher.called_trialled_tool and teacher.used_trialled_tool
    assert not golden.trialled_tools and not golden.called_trialled_tool
    # The metric counts episodes with a trial (not the golden one) and, of those, the ones that used a trialled tool.
    assert bootstrap_metrics([failed_use, other_tool, teacher_row, golden_row])["trial_then_use_rate"] == pytest.approx(
        1 / 3
    )


def test_a_repeated_failure_is_the_same_failing_call_twice_in_a_row(catalog, renamed):
    repeats = scripted(catalog, renamed, [CAPITAL, CAPITAL, CAPITAL, Answer("Kyoto")])
    assert [t.number for t in Episode.from_row(repeats).repeated_failures] == [2, 3]
    assert classify_failure(repeats) == "repeated_failing_call"
    assert score_episode(repeats).guards["repeated_failure"] == 2
    probes = scripted(
        catalog, renamed, [ToolCall("get_capital", {"country": "France"}, "trial")] * 2 + [Answer("Kyoto")]
    )
    assert len(Episode.from_row(probes).repeated_failures) == 1, "a repeated probe counts too"
    not_repeats = {
        "calls that worked": scripted(catalog, capital_task(), [CAPITAL, CAPITAL, Answer("Kyoto")]),
        "other arguments": scripted(
            catalog, renamed, [CAPITAL, ToolCall("get_capital", {"country": "France"}), Answer("Kyoto")]
        ),
        "no call at all": scripted(
            catalog, capital_task(), [Invalid("??", "no action"), Invalid("??", "no action"), Answer("Kyoto")]
        ),
    }
    for case, row in not_repeats.items():
        assert Episode.from_row(row).repeated_failures == [], case
        assert (
            classify_failure(row) != "repeated_failing_call" and score_episode(row).guards["repeated_failure"] == 0
        ), case


def test_errors_outside_trials_leave_out_the_probes(catalog, renamed):
    probe = ToolCall("get_capital", {"country": "France"}, "trial")
    row = scripted(catalog, renamed, [probe, CAPITAL, Invalid("??", "no action"), Answer("Kyoto")])
    episode = Episode.from_row(row)
    assert episode.errors_outside_trials == ["unknown_parameter", "bad_format"]
    assert len(episode.errors_outside_trials) == row["n_errors"]
    assert [t.error for t in episode.executions] == ["unknown_parameter"] and not episode.execution_worked


def test_rewards_the_failure_taxonomy_and_the_metrics_agree_with_the_episode(catalog):
    tasks = generate_tasks("evolved", 8, seed=5, catalog=catalog)
    env = ToolEnv(catalog, EnvConfig(max_turns=6))
    policies = [TrialTeacher(), GoldenTeacher(), GuessingPolicy(), TrialFarmingPolicy(), RepeatingFailurePolicy()]
    rows = [trajectory_row(run_episode(env, policy, task), "test") for policy in policies for task in tasks]
    env.close()
    config = RewardConfig(max_trials=2)
    episodes = [Episode.from_row(row) for row in rows]
    for row, episode in zip(rows, episodes):
        score = score_episode(row, config, max_turns=6)
        assert score.guards == {
            "no_call": int(not episode.made_a_call),
            "trial_overflow": max(0, len(episode.trials) - config.max_trials),
            "repeated_failure": len(episode.repeated_failures),
        }
        assert score.components["outcome"] == float(episode.success)
        if episode.out_of_budget:
            assert score.components["budget"] == -1.0
        if score.components["trial_info"]:
            assert episode.trialled_tools and episode.execution_worked
        failure = classify_failure(row)
        assert (failure is None) == episode.success
        assert (failure == "budget_exhausted") == (not episode.success and episode.out_of_budget)
        if failure == "repeated_failing_call":
            assert episode.repeated_failures
        if failure == "tried_but_not_used":
            assert episode.trialled_tools and not episode.called_trialled_tool
        if failure == "never_tried":
            assert not episode.trialled_tools
        assert len(episode.errors_outside_trials) == row["n_errors"] and len(episode.trials) == row["n_trials"]
    trialled = [e for e in episodes if e.trialled_tools]
    assert bootstrap_metrics(rows)["trial_then_use_rate"] == pytest.approx(
        sum(e.used_trialled_tool for e in trialled) / len(trialled)
    )
    # The policies between them exercise every fact.
    assert any(e.repeated_failures for e in episodes) and any(not e.made_a_call for e in episodes)
    assert any(e.out_of_budget for e in episodes) and any(len(e.trials) > config.max_trials for e in episodes)
