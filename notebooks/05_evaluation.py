import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # 05 · Evaluation

    **By the end of this notebook you will be able to**

    1. say what each of the lab's metrics measures, and why each comes with a 95% confidence interval;
    2. compare the base model, both teachers and a random-call baseline on seen, evolved and unseen tools;
    3. read a robustness curve (success against evolution level) and a failure taxonomy;
    4. put the policies you trained in notebooks 03 and 04 (or the shipped ones) on the same scale;
    5. open failed episodes and say, in your own words, what went wrong.
    """)
    return


@app.cell
def _():
    import marimo as mo

    from labkit import costs, eval_cache, lessons, notebook_runs, plots
    from labkit.course import open_lesson
    from labkit.evaluate import FAILURES, METRICS, format_metric, pooled_success, robustness_by_policy, sample_failures
    from labkit.trace_html import transcript_html

    _lesson = open_lesson(mo)  # `python notebooks/05_evaluation.py --run` presses every button (headless runs, tests)
    profile, run_all = _lesson.profile, _lesson.run_all
    return FAILURES, METRICS, costs, eval_cache, format_metric, lessons, mo, notebook_runs, plots, pooled_success, profile, robustness_by_policy, run_all, sample_failures, transcript_html


@app.cell(hide_code=True)
def _(eval_cache, lessons, mo, profile):
    mo.md(
        "## 1. The metrics\n\n| metric | what it measures |\n|:--|:--|\n"
        + "\n".join(f"| `{name}` | {meaning} |" for name, meaning in lessons.METRIC_MEANINGS.items())
        + "\n\nEvery figure is a mean over episodes, with a **bootstrap 95% interval**: resample the episodes a thousand "
        "times and keep the middle 95% of the recomputed metric. With a few dozen episodes, two policies whose "
        "intervals overlap are not clearly different.\n\n"
        f"Here every policy plays {profile.notebook.eval_tasks} tasks per split with at most "
        f"{eval_cache.lesson_eval_config('random', 'seen', profile.name).max_turns} turns, the ablation report's budget. "
        "The scripted teachers and random calls play at once; the model plays when you press its button. Every evaluation "
        "is cached in `runs/eval-cache/` and shared with notebook 03, so nothing is evaluated twice."
    )
    return


@app.cell
def _(mo):
    get_evaluated, set_evaluated = mo.state(0)
    return get_evaluated, set_evaluated


@app.cell
def _(eval_cache, profile):
    splits = ["seen", "evolved", "unseen"]
    scripted = ["teacher:golden", "teacher:trial", "random"]
    eval_cache.compare_policies(scripted, splits, profile.name)  # scripted policies: moments, no model
    policies = [profile.model, *scripted]
    return policies, splits


@app.cell
def _(costs, eval_cache, profile):
    speed = costs.measured_speed(profile.model, profile.name, eval_cache.eval_batch(profile.name))
    print(f"measured here: {speed.turn_seconds(profile.eval.max_new_tokens):.1f} s a turn")
    return (speed,)


@app.cell
def _(costs, eval_cache, get_evaluated, mo, profile, speed, splits):
    get_evaluated()
    base_pending = eval_cache.pending_model_episodes([profile.model], splits, profile.name)
    base_cost = costs.episodes_estimate(base_pending, eval_cache.lesson_eval_config(profile.model, "seen", profile.name).max_turns, profile.eval.max_new_tokens, speed)
    base_button = mo.ui.run_button(label=f"Evaluate the base model ({profile.model})", disabled=not base_pending)
    mo.vstack([base_button, mo.md(f"{base_pending} episodes to play: {base_cost.describe()}." if base_pending else "The base model is evaluated (cached).")])
    return (base_button,)


@app.cell
def _(base_button, eval_cache, mo, profile, run_all, set_evaluated, splits):
    mo.stop(not (base_button.value or run_all), mo.md("*The base model is not playing. Press the button to evaluate it.*"))
    with mo.status.progress_bar(total=eval_cache.pending_model_episodes([profile.model], splits, profile.name), title="Episodes played", show_eta=True) as base_bar:
        eval_cache.compare_policies([profile.model], splits, profile.name, on_episode=lambda row: base_bar.update())
    set_evaluated(lambda n: n + 1)
    return


@app.cell(hide_code=True)
def _(mo):
    worst_guess = mo.ui.radio(
        options=["the base model", "the golden teacher", "the trial teacher", "random calls"],
        label="**Predict, then look.** Which policy loses the most success going from seen to evolved tools?",
    )
    worst_guess
    return (worst_guess,)


@app.cell
def _(eval_cache, get_evaluated, policies, profile, splits):
    get_evaluated()
    results = eval_cache.cached_results(policies, splits, profile.name)
    return (results,)


@app.cell
def _(METRICS, format_metric, lessons, mo, plots, policies, results, worst_guess):
    mo.stop(worst_guess.value is None, mo.md("*Answer the question above to see the results.*"))
    names = {policies[0]: "the base model", "teacher:golden": "the golden teacher", "teacher:trial": "the trial teacher", "random": "random calls"}
    drops = {p: results[(p, "seen")]["success"] - results[(p, "evolved")]["success"] for p in policies if (p, "seen") in results and (p, "evolved") in results}
    worst = max(drops, key=drops.get)
    table = [{"policy": p, "split": s, **{m: format_metric(metrics, m) for m in METRICS}, "n": metrics["n"]} for (p, s), metrics in results.items()]
    mo.vstack(
        [
            mo.md(
                lessons.grade_prediction(
                    worst_guess.value,
                    names[worst],
                    "Drop in success from seen to evolved: " + ", ".join(f"{names[p]} {d:+.0%}" for p, d in drops.items()) + ". "
                    "A policy that never succeeds has nothing to lose; the golden teacher loses what imitation can't survive."
                    + ("" if (policies[0], "evolved") in results else " (The base model is not evaluated yet: press its button above.)"),
                )
            ),
            plots.success_by_split(results),
            mo.ui.table(table, selection=None, page_size=12),
        ]
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 2. Robustness and failures

    The **robustness curve** puts level 0 (the seen split) and levels 1-4 (the evolved split) on one axis.
    The **failure taxonomy** names the first matching cause of each failed episode: a budget ran out, the output
    could not be parsed, a wrong tool, the same failing call again, an error ignored, a wrong parameter name,
    a wrong value or format, a trial whose tool was never used, no trial at all on a changed tool, or simply a wrong answer.
    """)
    return


@app.cell
def _(FAILURES, mo, plots, results, robustness_by_policy):
    failures = {}
    for (policy, _split), metrics in results.items():
        for label, count in metrics["failures"].items():
            failures.setdefault(policy, {})[label] = failures.get(policy, {}).get(label, 0) + count
    mo.hstack([plots.robustness_curve(robustness_by_policy(results)), plots.failure_taxonomy(failures, FAILURES)])
    return


@app.cell(hide_code=True)
def _(mo, notebook_runs):
    trained_source = mo.ui.radio(options=notebook_runs.TRAINED_SOURCES, value=notebook_runs.TRAINED_SOURCES[1], label="trained policies")
    mo.vstack(
        [
            mo.md(
                "## 3. The policies you trained\n\n"
                "Notebook 03 trained SFT-golden and SFT-trial, notebook 04 trained GRPO on top of SFT-trial. "
                "Here they play the same evolved and unseen tasks as the base model above. "
                "It starts on the shipped ones (`labkit ablation` trained them at the cpu profile) with the ablation report's "
                "numbers; pick yours once you have trained them."
            ),
            trained_source,
        ]
    )
    return (trained_source,)


@app.cell(hide_code=True)
def _(mo):
    trained_guess = mo.ui.radio(
        options=["SFT-golden", "SFT-trial", "SFT-trial + GRPO", "about the same"],
        label="**Predict, then look.** Which trained policy succeeds most often on evolved + unseen tools, at this size?",
    )
    trained_guess
    return (trained_guess,)


@app.cell
def _(costs, eval_cache, get_evaluated, mo, notebook_runs, profile, speed, trained_source):
    get_evaluated()
    trained = notebook_runs.trained_policies(profile.name, trained_source.value, str(mo.notebook_dir().parent / "data" / "adapters"))
    trained_splits = ["evolved", "unseen"]
    trained_pending = eval_cache.pending_model_episodes(list(trained.values()), trained_splits, profile.name)
    trained_cost = costs.episodes_estimate(trained_pending, eval_cache.lesson_eval_config(profile.model, "seen", profile.name).max_turns, profile.eval.max_new_tokens, speed)
    trained_button = mo.ui.run_button(label="Evaluate these trained policies", disabled=not trained_pending)
    mo.vstack([trained_button, mo.md(f"{trained_pending} episodes to play: {trained_cost.describe()}." if trained_pending else ("All evaluated (cached)." if trained else ""))])
    return trained, trained_button, trained_splits


@app.cell
def _(eval_cache, mo, profile, run_all, set_evaluated, trained, trained_button, trained_splits):
    mo.stop(not (trained_button.value or run_all) or not trained, mo.md("*Nothing is being evaluated. Press the button to play the trained policies.*"))
    with mo.status.progress_bar(total=eval_cache.pending_model_episodes(list(trained.values()), trained_splits, profile.name), title="Episodes played", show_eta=True) as trained_bar:
        eval_cache.compare_policies(list(trained.values()), trained_splits, profile.name, on_episode=lambda row: trained_bar.update())
    set_evaluated(lambda n: n + 1)
    return


@app.cell
def _(eval_cache, lessons, mo, notebook_runs, plots, pooled_success, profile, trained, trained_guess, trained_splits):
    mo.stop(trained_guess.value is None, mo.md("*Answer the question above to see the results.*"))
    arm_names = {profile.model: "base", **{folder: arm for arm, folder in trained.items()}}
    trained_results = eval_cache.cached_results([profile.model, *trained.values()], trained_splits, profile.name)
    named_results = {(arm_names[p], s): m for (p, s), m in trained_results.items()}
    measured = pooled_success(named_results, trained_splits)
    shipped = notebook_runs.ablation_success(mo.notebook_dir().parent / "reports" / "ablation.md")
    own = all(arm in measured for arm in trained) and trained
    pooled = measured if own else shipped
    where = "measured here" if own else "from the shipped ablation report (`reports/ablation.md`) until these are evaluated"
    mo.vstack(
        ([plots.success_by_split(named_results)] if named_results else [])
        + [
            mo.md(
                lessons.grade_prediction(
                    trained_guess.value,
                    lessons.best_trained(pooled),
                    f"Success on evolved + unseen, {where}: " + ", ".join(f"{a} {v:.0%}" for a, v in pooled.items()) + ". "
                    "At 135M parameters and minutes of CPU training, imitating golden calls can beat learning to try first. "
                    "The lab's full ablation (`reports/ablation.md`, 100 tasks x 3 seeds a split) shows where: trying first wins on "
                    "changed tools (evolved, +0.10 over SFT-golden, interval above zero) and loses on tools never trained on (unseen, -0.30). "
                    "Trained on every training task (`reports/ablation-curve.md`), the lead on changed tools grows to +0.25, "
                    "and SFT-recover, which fixes its calls after failing without probing first, beats SFT-golden pooled. "
                    "At 800 training tasks (`reports/ablation-tasks800.md`) that lead is decisive, +0.11 [+0.05, +0.18], while "
                    "SFT-trial ties golden: learning from errors pays here; trying first, at this size, not yet. "
                    "Intervals show how much of any gap a few dozen episodes can resolve: gaps inside them count as *about the same*.",
                )
            ),
            mo.md(lessons.recovery_note(named_results)),
        ]
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 4. Browse failures

    Pick a policy and a cause; read a few of its failed episodes (any policy evaluated above).
    """)
    return


@app.cell
def _(FAILURES, get_evaluated, mo, policies, trained):
    get_evaluated()
    policy_picker = mo.ui.dropdown(options=policies + list(trained.values()), value="teacher:golden", label="policy")
    failure_picker = mo.ui.dropdown(options=["any"] + list(FAILURES), value="any", label="failure")
    mo.hstack([policy_picker, failure_picker], justify="start")
    return failure_picker, policy_picker


@app.cell
def _(eval_cache, failure_picker, lessons, mo, policy_picker, profile, sample_failures, transcript_html):
    rows = eval_cache.evaluation_rows(policy_picker.value, ["seen", "evolved", "unseen"], profile.name)
    picked = sample_failures(rows, None if failure_picker.value == "any" else failure_picker.value, k=3)
    mo.vstack([mo.md(f"**{len(picked)} failed episode(s)**" + ("" if rows else " (this policy has not been evaluated yet)"))] + [mo.Html(transcript_html(row)) for row in picked])
    return


@app.cell(hide_code=True)
def _(mo, notebook_runs):
    demo_text, demo_figures = notebook_runs.report_parts(mo.notebook_dir().parent / "reports" / "demo" / "ablation.md")
    mo.vstack(
        [
            mo.md(
                "## 5. The whole course in one command\n\n"
                "`make demo` (or `labkit demo --profile cpu`) runs notebooks 01-05 headless: it regenerates the data, "
                "trains both SFT arms and a GRPO step, evaluates them with the base model on 50 tasks a split and writes "
                "`reports/demo/ablation.md`, which ends by comparing itself with the full ablation. "
                "It takes about 36 minutes on two CPU cores with the vLLM engine (`make vllm`) and resumes if interrupted. Then `labkit view runs/demo` "
                "opens every episode in the trace viewer.\n\n"
                + (demo_text or "*(no demo report on this machine yet)*")
            )
        ]
        + [mo.image(src=str(figure), width=560) for figure in demo_figures[:1]]
    )
    return


if __name__ == "__main__":
    app.run()
