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

    from labkit import lessons, plots
    from labkit.evaluate import FAILURES, METRICS, format_metric, sample_failures
    from labkit.data import read_rows
    from labkit.profiles import resolve_profile

    return FAILURES, METRICS, format_metric, lessons, mo, plots, read_rows, resolve_profile, sample_failures


@app.cell
def _(mo, resolve_profile):
    profile = resolve_profile(mo.cli_args().get("profile"), argv=[])
    print(f"profile: {profile.name} (model: {profile.model})")
    return (profile,)


@app.cell(hide_code=True)
def _(lessons, mo):
    mo.md(
        "## 1. The metrics\n\n| metric | what it measures |\n|:--|:--|\n"
        + "\n".join(f"| `{name}` | {meaning} |" for name, meaning in lessons.METRIC_MEANINGS.items())
        + "\n\nEvery figure is a mean over episodes, with a **bootstrap 95% interval**: resample the episodes a thousand "
        "times and keep the middle 95% of the recomputed metric. With a few dozen episodes, two policies whose "
        "intervals overlap are not clearly different."
    )
    return


@app.cell(hide_code=True)
def _(mo):
    worst_guess = mo.ui.radio(
        options=["the base model", "the golden teacher", "the trial teacher", "random calls"],
        label="**Predict, then run.** Which policy loses the most success going from seen to evolved tools?",
    )
    worst_guess
    return (worst_guess,)


@app.cell
def _(lessons, mo, profile):
    policies = [profile.model, "teacher:golden", "teacher:trial", "random"]
    splits = ["seen", "evolved", "unseen"]
    results = lessons.compare_policies(
        policies, splits, n=profile.n_tasks, seeds=1, profile=profile.name, out_root="runs/notebook-eval",
        track=lambda pairs: mo.status.progress_bar(pairs, title="Evaluating policy x split", show_eta=True),
    )
    return policies, results


@app.cell
def _(lessons, mo, policies, results, worst_guess):
    drops = {p: results[(p, "seen")]["success"] - results[(p, "evolved")]["success"] for p in policies}
    names = {policies[0]: "the base model", "teacher:golden": "the golden teacher", "teacher:trial": "the trial teacher", "random": "random calls"}
    worst = max(drops, key=drops.get)
    mo.md(
        lessons.grade_prediction(
            worst_guess.value,
            names[worst],
            "Drop in success from seen to evolved: " + ", ".join(f"{names[p]} {d:+.0%}" for p, d in drops.items()) + ". "
            "A policy that never succeeds has nothing to lose; the golden teacher loses what imitation can't survive.",
        )
    )
    return


@app.cell
def _(METRICS, format_metric, mo, plots, results):
    table = [{"policy": p, "split": s, **{m: format_metric(metrics, m) for m in METRICS}, "n": metrics["n"]} for (p, s), metrics in results.items()]
    mo.vstack([plots.success_by_split(results), mo.ui.table(table, selection=None, page_size=12)])
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
def _(FAILURES, lessons, mo, plots, results):
    failures = {}
    for (policy, _split), metrics in results.items():
        for label, count in metrics["failures"].items():
            failures.setdefault(policy, {})[label] = failures.get(policy, {}).get(label, 0) + count
    mo.hstack([plots.robustness_curve(lessons.robustness_by_policy(results)), plots.failure_taxonomy(failures, FAILURES)])
    return


@app.cell(hide_code=True)
def _(lessons, mo):
    trained_source = mo.ui.radio(options=lessons.TRAINED_SOURCES, value=lessons.TRAINED_SOURCES[0], label="trained policies")
    mo.vstack(
        [
            mo.md(
                "## 3. The policies you trained\n\n"
                "Notebook 03 trained SFT-golden and SFT-trial, notebook 04 trained GRPO on top of SFT-trial. "
                "Here they play the same evolved and unseen tasks as the base model above. "
                "No time to train? Pick the shipped ones: `labkit ablation` trained them at the cpu profile."
            ),
            trained_source,
        ]
    )
    return (trained_source,)


@app.cell(hide_code=True)
def _(mo):
    trained_guess = mo.ui.radio(
        options=["SFT-golden", "SFT-trial", "SFT-trial + GRPO"],
        label="**Predict, then run.** Which trained policy succeeds most often on evolved + unseen tools, at this size?",
    )
    trained_guess
    return (trained_guess,)


@app.cell
def _(lessons, mo, profile, trained_source):
    trained = lessons.trained_policies(profile.name, trained_source.value, str(mo.notebook_dir().parent / "data" / "adapters"))
    trained_results = lessons.compare_policies(
        [profile.model, *trained.values()], ["evolved", "unseen"], n=profile.n_tasks, seeds=1, profile=profile.name, out_root="runs/notebook-eval",
        track=lambda pairs: mo.status.progress_bar(pairs, title="Evaluating the trained policies", show_eta=True),
    )
    return trained, trained_results


@app.cell
def _(lessons, mo, plots, profile, trained, trained_guess, trained_results):
    arm_names = {profile.model: "base", **{folder: arm for arm, folder in trained.items()}}
    named_results = {(arm_names[p], s): m for (p, s), m in trained_results.items()}
    pooled = lessons.pooled_success(named_results, ["evolved", "unseen"])
    labels = {"sft-golden": "SFT-golden", "sft-trial": "SFT-trial", lessons.SHIPPED_RL: "SFT-trial + GRPO"}
    best = max((a for a in pooled if a in labels), key=pooled.get, default=None)
    mo.vstack(
        [
            plots.success_by_split(named_results),
            mo.md(
                lessons.grade_prediction(
                    trained_guess.value,
                    labels.get(best, "none of them"),
                    "Success on evolved + unseen: " + ", ".join(f"{a} {v:.0%}" for a, v in pooled.items()) + ". "
                    "At 135M parameters and minutes of CPU training, imitating golden calls can beat learning to try "
                    "first: the shipped ablation measured that too (`reports/ablation.md`). Its intervals show how much "
                    "of any gap a few dozen episodes can resolve.",
                )
            )
            if trained
            else mo.callout(mo.md("No trained policies here yet: run notebooks 03 and 04, or pick the shipped ones (cpu profile)."), kind="warn"),
        ]
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 4. Browse failures

    Pick a policy and a cause; read a few of its failed episodes.
    """)
    return


@app.cell
def _(FAILURES, mo, policies, trained):
    policy_picker = mo.ui.dropdown(options=policies + list(trained.values()), value="teacher:golden", label="policy")
    failure_picker = mo.ui.dropdown(options=["any"] + list(FAILURES), value="any", label="failure")
    mo.hstack([policy_picker, failure_picker], justify="start")
    return failure_picker, policy_picker


@app.cell
def _(failure_picker, lessons, mo, policy_picker, read_rows, sample_failures):
    rows = [
        row
        for split in ("seen", "evolved", "unseen")
        for row in read_rows(f"runs/notebook-eval/{lessons.slug(policy_picker.value)}-{split}/episodes.jsonl")
    ]
    picked = sample_failures(rows, None if failure_picker.value == "any" else failure_picker.value, k=3)
    mo.vstack([mo.md(f"**{len(picked)} failed episode(s)**")] + [mo.Html(lessons.transcript_html(row)) for row in picked])
    return


@app.cell(hide_code=True)
def _(lessons, mo):
    demo_text, demo_figures = lessons.report_parts(mo.notebook_dir().parent / "reports" / "demo" / "ablation.md")
    mo.vstack(
        [
            mo.md(
                "## 5. The whole course in one command\n\n"
                "`make demo` (or `labkit demo --profile cpu`) runs notebooks 01-05 headless: it regenerates the data, "
                "trains both SFT arms and GRPO, evaluates them with the base model and writes `reports/demo/ablation.md`. "
                "It takes about 40 minutes on two CPU cores and resumes if interrupted. Then `labkit view runs/demo` "
                "opens every episode in the trace viewer.\n\n"
                + (demo_text or "*(no demo report on this machine yet)*")
            )
        ]
        + [mo.image(src=str(figure), width=560) for figure in demo_figures[:1]]
    )
    return


if __name__ == "__main__":
    app.run()
