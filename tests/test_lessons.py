from labkit import lessons, notebook_runs, run_logs, teach
from labkit.tasks import generate_tasks
from labkit.trace_html import label_mask_html, transcript_html


def test_prediction_grading_and_closest_label():
    assert lessons.grade_prediction(None, "a", "why").startswith("*Make your prediction")
    assert lessons.grade_prediction("a", "a", "why") == "**Right.** why"
    assert "the answer is *a*" in lessons.grade_prediction("b", "a", "why")
    assert lessons.closest_label(0.6, {"third": 1 / 3, "two thirds": 2 / 3}) == "two thirds"


def test_the_course_lists_ready_notebooks_that_exist():
    from pathlib import Path

    notebooks = Path(__file__).parent.parent / "notebooks"
    for stage in lessons.COURSE:
        assert (notebooks / stage.notebook).exists() == stage.ready, stage.notebook


def test_teacher_pair_and_transcripts_escape_html(catalog):
    task = generate_tasks("evolved", 5, seed=2, level=3, catalog=catalog)[0]
    pair = teach.teacher_pair(catalog, task)
    assert pair["trial"]["success"] and pair["trial"]["n_trials"] >= 1
    page = transcript_html(pair["trial"])
    assert "trial" in page and "solved" in page and "#3b82f6" in page
    row = dict(pair["golden"])
    row["messages"] = row["messages"][:2] + [
        {"role": "assistant", "content": "<execute>x</execute>", "tool_calls": None, "name": None},
        {"role": "tool", "content": '<script>alert("hi")</script>', "tool_calls": None, "name": "t"},
    ]
    page = transcript_html(row)
    assert "<script>" not in page and "&lt;script&gt;" in page


# ----------------------------------------------------------------------------- notebook 03


def test_label_mask_html_colours_exactly_the_assistant_tokens(tokenizer):
    from labkit.data import load_dataset_dir

    row = load_dataset_dir("data/trajectories/trial-train")[0]
    page = label_mask_html(row, tokenizer)
    learned = "".join(part.split("</span>")[0] for part in page.split('color:#14532d">')[1:])
    assert "&lt;tool_call&gt;" in learned and "&lt;answer&gt;" in learned and "&lt;|im_end|&gt;" in learned
    assert (
        "&quot;error&quot;" not in learned and row["query"][:20] not in learned
    )  # tool replies and the task are context
    assert "<script" not in page


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
    shipped = notebook_runs.ablation_success("reports/ablation.md")
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


def test_the_shipped_runs_falling_success_is_explained_from_its_own_numbers():
    folder = "data/adapters/" + notebook_runs.SHIPPED_RL
    history = run_logs.run_history(folder)
    note = lessons.success_curve_note(folder)
    first, last = history[0]["episode/success"], history[-1]["episode/success"]
    assert f"from {first:.2f} at step 1 to {last:.2f} at step {len(history)}" in note and "just 16 episodes" in note
    assert "inside that noise" in note  # 0.44 -> 0.06 on 16 episodes a step
    assert lessons.success_curve_note(None) == ""
    # a typical step, not the first, which also started the rollout engine
    assert run_logs.median_step_seconds(history) < history[0]["step_time"] == max(e["step_time"] for e in history)
    assert 1 <= run_logs.mean_turns(history) <= 8
