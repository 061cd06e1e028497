from matplotlib.figure import Figure

from labkit import lessons, plots
from labkit.tasks import generate_tasks
from labkit.toolset import ErrorKind


def test_tool_rows_cover_every_tool(catalog):
    rows = lessons.tool_rows(catalog)
    assert len(rows) == len(catalog) and {r["split"] for r in rows} == {"seen", "unseen"}


def test_evolution_demo_shows_old_docs_truth_and_the_documented_call(catalog):
    demo = lessons.evolution_demo(catalog, "get_capital", level=0, seed=0)
    assert demo.observation.ok and demo.changes == [] and demo.docs == catalog["get_capital"].schema
    broken = next(
        d
        for d in (lessons.evolution_demo(catalog, "get_capital", 1, seed) for seed in range(30))
        if not d.observation.ok
    )
    assert broken.docs["function"]["name"] == "get_capital" and broken.changes
    assert broken.observation.error in {ErrorKind.UNKNOWN_PARAMETER, ErrorKind.DEPRECATED, ErrorKind.INVALID_VALUE}


def test_a_learner_can_fix_a_renamed_parameter_from_the_error(catalog):
    for seed in range(50):
        demo = lessons.evolution_demo(catalog, "get_capital", 1, seed)
        if demo.observation.error is ErrorKind.UNKNOWN_PARAMETER:
            break
    message = demo.observation.content
    new_name = message.split("missing required parameter '")[1].split("'")[0]
    fixed = lessons.evolution_demo(catalog, "get_capital", 1, seed, {new_name: demo.arguments["country"]})
    assert fixed.observation.ok


def test_parse_arguments_explains_bad_json():
    assert lessons.parse_arguments('{"a": 1}') == {"a": 1}
    assert lessons.parse_arguments("") == {}
    assert "not valid JSON" in lessons.parse_arguments("{a")
    assert "JSON object" in lessons.parse_arguments("[1]")


def test_documented_calls_fail_more_as_levels_rise(catalog):
    rates = lessons.documented_call_failures(catalog, n_tasks=40)
    assert rates[0] == 0.0
    assert 0.2 < rates[1] < rates[4] <= 1.0
    assert isinstance(plots.failure_by_level(rates), Figure)


def test_prediction_grading_and_closest_label():
    assert lessons.grade_prediction(None, "a", "why").startswith("*Make your prediction")
    assert lessons.grade_prediction("a", "a", "why") == "**Right.** why"
    assert "the answer is *a*" in lessons.grade_prediction("b", "a", "why")
    assert lessons.closest_label(0.6, {"third": 1 / 3, "two thirds": 2 / 3}) == "two thirds"


def test_task_summary_and_rows(catalog):
    tasks = generate_tasks("train", 50, seed=0, catalog=catalog)
    summary = lessons.task_summary(tasks)
    assert sum(summary["hops"].values()) == 50
    rows = lessons.task_rows(tasks)
    assert len(rows) == 50 and list(rows[0])[:4] == [
        "id",
        "hops",
        "level",
        "check",
    ]  # short columns first: none cut off
    assert isinstance(plots.task_summary(summary), Figure)


def test_the_course_lists_ready_notebooks_that_exist():
    from pathlib import Path

    notebooks = Path(__file__).parent.parent / "notebooks"
    for stage in lessons.COURSE:
        assert (notebooks / stage.notebook).exists() == stage.ready, stage.notebook


def test_teacher_pair_and_transcripts_escape_html(catalog):
    task = generate_tasks("evolved", 5, seed=2, level=3, catalog=catalog)[0]
    pair = lessons.teacher_pair(catalog, task)
    assert pair["trial"]["success"] and pair["trial"]["n_trials"] >= 1
    page = lessons.transcript_html(pair["trial"])
    assert "trial" in page and "solved" in page and "#3b82f6" in page
    row = dict(pair["golden"])
    row["messages"] = row["messages"][:2] + [
        {"role": "assistant", "content": "<execute>x</execute>", "tool_calls": None, "name": None},
        {"role": "tool", "content": '<script>alert("hi")</script>', "tool_calls": None, "name": "t"},
    ]
    page = lessons.transcript_html(row)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_dataset_stats_and_comparison_plot(catalog, tokenizer):
    rows = [lessons.teacher_pair(catalog, t)["trial"] for t in generate_tasks("train", 6, seed=1, catalog=catalog)]
    stats = lessons.dataset_stats(rows, tokenizer)
    assert len(stats["tokens per trajectory"]) == 6 and min(stats["tokens per trajectory"]) > 100
    assert isinstance(plots.dataset_comparison({"trial": stats}), Figure)


def test_teacher_success_rates(catalog):
    assert lessons.teacher_success(catalog, "trial", "evolved", 2, 20) == 1.0
    assert lessons.teacher_success(catalog, "golden", "evolved", 2, 20) < 0.8


# ----------------------------------------------------------------------------- notebook 03


def test_label_mask_html_colours_exactly_the_assistant_tokens(tokenizer):
    from labkit.data import load_dataset_dir

    row = load_dataset_dir("data/trajectories/trial-train")[0]
    page = lessons.label_mask_html(row, tokenizer)
    learned = "".join(part.split("</span>")[0] for part in page.split('color:#14532d">')[1:])
    assert "&lt;tool_call&gt;" in learned and "&lt;answer&gt;" in learned and "&lt;|im_end|&gt;" in learned
    assert (
        "&quot;error&quot;" not in learned and row["query"][:20] not in learned
    )  # tool replies and the task are context
    assert "<script" not in page


def test_live_loss_collects_points_and_calls_show():
    shown = []
    points, on_log = lessons.live_loss(lambda pts, logs: shown.append((len(pts), logs["step"])))
    for step, logs in enumerate([{"loss": 2.0}, {"learning_rate": 1e-3}, {"loss": 1.5}], 1):
        on_log({"step": step, **logs})
    assert points == [[1, 2.0], [3, 1.5]] and shown == [(1, 1), (2, 3)]


def test_shipped_adapters_and_report_parts(tmp_path):
    assert lessons.shipped_adapter("sft-trial", root=str(tmp_path)) is None
    (tmp_path / "sft-trial").mkdir()
    (tmp_path / "sft-trial" / "adapter_config.json").write_text("{}")
    assert lessons.shipped_adapter("sft-trial", root=str(tmp_path)) == str(tmp_path / "sft-trial")
    assert lessons.report_parts(tmp_path / "none.md") == ("", [])
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.png").write_bytes(b"png")
    (tmp_path / "r.md").write_text("# Title\n\n| a |\n\n![a](figures/a.png)\n![b](figures/missing.png)\n")
    text, images = lessons.report_parts(tmp_path / "r.md")
    assert text.strip() == "| a |" and images == [tmp_path / "figures" / "a.png"]


def test_lesson_evaluations_use_the_reports_turn_budget_and_one_cache_folder_per_policy(tmp_path, monkeypatch):
    from labkit.profiles import PROFILES

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "adapters" / "sft-trial").mkdir(parents=True)
    config = lessons.lesson_eval_config("data/adapters/sft-trial", "evolved", "cpu")
    assert config.max_turns == PROFILES["cpu"].ablation.max_turns == 8 and (config.n, config.seeds) == (
        lessons.LESSON_EVAL_TASKS["cpu"],
        1,
    )
    assert config.out == "runs/eval-cache/cpu/data-adapters-sft-trial/evolved"
    # the same folder, named from anywhere, shares its cache
    assert (
        lessons.lesson_eval_config(str(tmp_path / "data" / "adapters" / "sft-trial"), "evolved", "cpu").out
        == config.out
    )
    assert lessons.lesson_eval_config("smollm2-135m", "seen", "cpu").out == "runs/eval-cache/cpu/smollm2-135m/seen"


def test_compare_policies_caches_each_pair_and_counts_what_is_left(tmp_path, capsys):
    root = str(tmp_path)
    assert (
        lessons.pending_model_episodes(["tiny", "random"], ["seen", "evolved"], "tiny", root)
        == 2 * lessons.LESSON_EVAL_TASKS["tiny"]
    )
    assert lessons.cached_results(["random"], ["seen"], "tiny", root) == {}
    played = []
    results = lessons.compare_policies(
        ["teacher:golden", "random"], ["seen", "evolved"], "tiny", root, on_episode=played.append
    )
    assert len(played) == 4 * lessons.LESSON_EVAL_TASKS["tiny"], "one call per episode, as it finishes"
    assert results[("teacher:golden", "seen")]["success"] == 1.0
    assert "teacher:golden on seen: success 1.000" in capsys.readouterr().out  # script mode shows no progress bar
    cached = lessons.cached_results(["teacher:golden", "random"], ["seen", "evolved"], "tiny", root)
    assert {k: (m["success"], m["n"]) for k, m in cached.items()} == {
        k: (m["success"], m["n"]) for k, m in results.items()
    }
    played.clear()
    lessons.compare_policies(["random"], ["seen"], "tiny", root, on_episode=played.append)
    assert played == [], "a cached pair is read back, not played again"
    rows = lessons.evaluation_rows("random", ["seen", "evolved"], "tiny", root)
    assert len(rows) == 2 * lessons.LESSON_EVAL_TASKS["tiny"]


def test_paired_transcripts_pick_a_task_where_outcomes_differ(tmp_path):
    from labkit.data import append_rows

    for policy, outcomes in (("teacher:golden", [True, True]), ("random", [True, False])):
        out = lessons.lesson_eval_config(policy, "evolved", "tiny", str(tmp_path)).out
        append_rows(f"{out}/episodes.jsonl", [{"task_id": f"t{i}", "success": ok} for i, ok in enumerate(outcomes)])
    pair = lessons.paired_transcripts("evolved", ["teacher:golden", "random"], "tiny", str(tmp_path))
    assert [(p, row["task_id"]) for p, row in pair] == [("teacher:golden", "t1"), ("random", "t1")]
    assert lessons.paired_transcripts("unseen", ["teacher:golden", "random"], "tiny", str(tmp_path)) == []


def test_recovery_note_explains_near_zero_recovery_from_the_numbers():
    low = {("sft-trial", "evolved"): {"n": 8, "error_recovery_rate": 0.0,
                                      "failures": {"repeated_failing_call": 5, "wrong_answer": 1}},
           ("sft-trial", "unseen"): {"n": 8, "error_recovery_rate": 0.1,
                                     "failures": {"repeated_failing_call": 2}}}  # fmt: skip
    note = lessons.recovery_note(low)
    assert "sft-trial 0.05" in note and "`repeated_failing_call`" in note and "rarely fix a call" in note
    high = {("a", "seen"): {"n": 4, "error_recovery_rate": 0.5, "failures": {}}}
    assert "read the error and changed its call" in lessons.recovery_note(high)
    assert "n/a (no failed calls)" in lessons.recovery_note(
        {("b", "seen"): {"n": 4, "error_recovery_rate": float("nan"), "failures": {}}}
    )


def test_trained_predictions_are_graded_against_the_shipped_report():
    shipped = lessons.ablation_success("reports/ablation.md")
    assert set(shipped) >= {"base", "sft-golden", "sft-trial", "sft-trial-grpo"} and all(
        0 <= v <= 1 for v in shipped.values()
    )
    assert lessons.best_trained({"sft-golden": 0.3, "sft-trial": 0.1}) == "SFT-golden"
    assert lessons.best_trained({"sft-golden": 0.12, "sft-trial": 0.1, "base": 0.9}) == "about the same"
    assert lessons.best_trained({}) == "none of them"


def test_share_predictions_cover_every_measured_share():
    assert lessons.closest_label(0.51, lessons.SHARE_LABELS) == "about half"  # 01's measured level-1 failure rate
    assert all(min(abs(v - x / 20) for v in lessons.SHARE_LABELS.values()) <= 0.15 for x in range(21))


def test_golden_teacher_on_evolved_tasks_says_it_makes_level_0_data():
    assert "level 0" in lessons.teacher_choice_note("golden", "evolved")
    assert lessons.teacher_choice_note("trial", "evolved") == lessons.teacher_choice_note("golden", "train") == ""


def test_pooled_success_weights_by_episodes():
    results = {
        ("a", "evolved"): {"success": 1.0, "n": 1},
        ("a", "unseen"): {"success": 0.0, "n": 3},
        ("a", "seen"): {"success": 1.0, "n": 9},
    }
    assert lessons.pooled_success(results, ["evolved", "unseen"]) == {"a": 0.25}


def test_trained_policies_finds_yours_or_the_shipped_ones(tmp_path, monkeypatch):
    shipped = lessons.trained_policies("cpu", lessons.TRAINED_SOURCES[1])
    assert set(shipped) == {"sft-golden", "sft-recover", "sft-trial", "sft-trial-grpo"}  # shipped in data/adapters
    assert lessons.trained_policies("tiny", lessons.TRAINED_SOURCES[1]) == {}  # trained for another model
    monkeypatch.chdir(tmp_path)
    assert lessons.trained_policies("tiny", lessons.TRAINED_SOURCES[0]) == {}
    folder = tmp_path / "runs" / "notebook-sft" / "tiny" / "sft-trial"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    assert lessons.trained_policies("tiny", lessons.TRAINED_SOURCES[0]) == {
        "sft-trial": "runs/notebook-sft/tiny/sft-trial"
    }


def test_first_table_is_the_headline_of_the_shipped_report():
    text, _ = lessons.report_parts("reports/ablation.md")
    table = lessons.first_table(text).splitlines()
    assert table[0].startswith("| arm |") and any(line.startswith("| sft-trial-grpo |") for line in table)
    assert lessons.first_table("no table here") == ""
