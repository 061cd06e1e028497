"""The lessons' cached evaluations: one folder per profile, policy and split, shared by notebooks 03 and 05."""

from labkit import eval_cache
from labkit.profiles import PROFILES


def test_lesson_evaluations_use_the_reports_turn_budget_and_one_cache_folder_per_policy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "adapters" / "sft-trial").mkdir(parents=True)
    config = eval_cache.lesson_eval_config("data/adapters/sft-trial", "evolved", "cpu")
    assert config.max_turns == PROFILES["cpu"].ablation.max_turns == 8 and (config.n, config.seeds) == (
        PROFILES["cpu"].notebook.eval_tasks,
        1,
    )
    assert config.out == "runs/eval-cache/cpu/data-adapters-sft-trial/evolved"
    # the same folder, named from anywhere, shares its cache
    assert (
        eval_cache.lesson_eval_config(str(tmp_path / "data" / "adapters" / "sft-trial"), "evolved", "cpu").out
        == config.out
    )
    assert eval_cache.lesson_eval_config("smollm2-135m", "seen", "cpu").out == "runs/eval-cache/cpu/smollm2-135m/seen"


def test_compare_policies_caches_each_pair_and_counts_what_is_left(tmp_path, capsys):
    root = str(tmp_path)
    assert (
        eval_cache.pending_model_episodes(["tiny", "random"], ["seen", "evolved"], "tiny", root)
        == 2 * PROFILES["tiny"].notebook.eval_tasks
    )
    assert eval_cache.cached_results(["random"], ["seen"], "tiny", root) == {}
    played = []
    results = eval_cache.compare_policies(
        ["teacher:golden", "random"], ["seen", "evolved"], "tiny", root, on_episode=played.append
    )
    assert len(played) == 4 * PROFILES["tiny"].notebook.eval_tasks, "one call per episode, as it finishes"
    assert results[("teacher:golden", "seen")]["success"] == 1.0
    assert "teacher:golden on seen: success 1.000" in capsys.readouterr().out  # script mode shows no progress bar
    cached = eval_cache.cached_results(["teacher:golden", "random"], ["seen", "evolved"], "tiny", root)
    assert {k: (m["success"], m["n"]) for k, m in cached.items()} == {
        k: (m["success"], m["n"]) for k, m in results.items()
    }
    played.clear()
    eval_cache.compare_policies(["random"], ["seen"], "tiny", root, on_episode=played.append)
    assert played == [], "a cached pair is read back, not played again"
    rows = eval_cache.evaluation_rows("random", ["seen", "evolved"], "tiny", root)
    assert len(rows) == 2 * PROFILES["tiny"].notebook.eval_tasks


def test_paired_transcripts_pick_a_task_where_outcomes_differ(tmp_path):
    from labkit.data import append_rows

    for policy, outcomes in (("teacher:golden", [True, True]), ("random", [True, False])):
        out = eval_cache.lesson_eval_config(policy, "evolved", "tiny", str(tmp_path)).out
        append_rows(f"{out}/episodes.jsonl", [{"task_id": f"t{i}", "success": ok} for i, ok in enumerate(outcomes)])
    pair = eval_cache.paired_transcripts("evolved", ["teacher:golden", "random"], "tiny", str(tmp_path))
    assert [(p, row["task_id"]) for p, row in pair] == [("teacher:golden", "t1"), ("random", "t1")]
    assert eval_cache.paired_transcripts("unseen", ["teacher:golden", "random"], "tiny", str(tmp_path)) == []
