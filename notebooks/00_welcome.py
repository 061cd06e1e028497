import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # 00 · Welcome to ToolMaster Lab

    **By the end of this notebook you will be able to**

    1. say what *trial-and-execution* tool learning is, and how it differs from imitating golden tool calls;
    2. name the stages of the lab and the notebook that teaches each one;
    3. read your machine's hardware check and know which profile (run size) you are on.
    """)
    return


@app.cell
def _():
    import marimo as mo

    from labkit.course import open_lesson
    from labkit.doctor import format_report, machine_report
    from labkit.lessons import COURSE, best_trained, grade_prediction
    from labkit.notebook_runs import ablation_success, first_table, report_parts

    profile = open_lesson(mo).profile
    return COURSE, ablation_success, best_trained, first_table, format_report, grade_prediction, machine_report, mo, profile, report_parts


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## The idea in one paragraph

    Most tool-learning data is a **golden trajectory**: the right call, made once, with the right arguments.
    A model trained on it learns *these* tools by heart. When a tool is new, or has quietly changed
    (a renamed parameter, a new date format, a moved endpoint) while the documentation stays old,
    the memorised call fails and the model has no habit for what to do next.

    ToolMaster ([arXiv 2601.12762](https://arxiv.org/abs/2601.12762)) teaches a habit instead:

    - **Trial:** before solving, make a cheap exploratory call to learn what the tool accepts and returns.
    - **Execution:** solve the task, and when the environment reports an error, read it and correct the call.

    It trains that habit in two stages: supervised fine-tuning on a teacher's trajectories that contain trials
    and self-correction, then reinforcement learning (GRPO) in the live tool environment.
    This lab reproduces the comparison at laptop scale, with a real 135M-parameter model.
    """)
    return


@app.cell(hide_code=True)
def _(COURSE, mo):
    mo.md(
        "## The path through the lab\n\n| notebook | what you do | CLI twin |\n|---|---|---|\n"
        + "\n".join(f"| `{s.notebook}` | {s.summary} | `{s.command}` |" if s.ready else f"| {s.notebook} *(coming)* | {s.summary} | |" for s in COURSE)
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## Your machine

    Every notebook sizes its work from a **profile**: `tiny` (seconds, for tests), `cpu` (the embedded
    SmolLM2-135M on a laptop) or `gpu` (one CUDA GPU). Set it with `LABKIT_PROFILE=cpu` or
    `--profile cpu`; otherwise the lab picks what this machine can do.
    """)
    return


@app.cell
def _(format_report, machine_report, mo, profile):
    report = machine_report()
    print(format_report(report))
    mo.vstack(
        [
            mo.md(f"```text\n{format_report(report)}\n```"),
            mo.callout(mo.md(f"This notebook runs at profile **{profile.name}**: {profile.description}."), kind="info"),
        ]
    )
    return


@app.cell(hide_code=True)
def _(mo):
    prediction = mo.ui.radio(
        options=[
            "the model that imitated golden calls",
            "the model that learned to try tools first",
            "about the same",
        ],
        label="**Predict, then look.** The paper's 7B-8B models that learned to try tools first beat imitation on changed "
        "and unseen tools. This lab trains a 135M model for minutes on two CPU cores. Which of its two fine-tuned models "
        "succeeds more often on changed and unseen tools?",
    )
    prediction
    return (prediction,)


@app.cell(hide_code=True)
def _(ablation_success, best_trained, grade_prediction, mo, prediction):
    measured = ablation_success(mo.notebook_dir().parent / "reports" / "ablation.md")
    winner = best_trained({arm: measured[arm] for arm in ("sft-golden", "sft-trial") if arm in measured})
    answer = {"SFT-golden": "the model that imitated golden calls", "SFT-trial": "the model that learned to try tools first"}.get(winner, "about the same")
    mo.md(
        grade_prediction(
            prediction.value,
            answer,
            "In the lab's own ablation (below), success on evolved + unseen tools: SFT-golden "
            f"{measured.get('sft-golden', float('nan')):.0%}, SFT-trial {measured.get('sft-trial', float('nan')):.0%}. "
            "Trying first only pays when the model can also read the error a changed tool sends back and fix its call; "
            "at this size and training time it learns to write trials but rarely recovers from an error, while imitation "
            "still gets the unchanged and simple calls right. Notebooks 03-05 show where, episode by episode.",
        )
        if measured
        else "*(no ablation report in `reports/` yet: run `labkit ablation`)*"
    )
    return


@app.cell(hide_code=True)
def _(first_table, mo, report_parts):
    ablation_text, ablation_figures = report_parts(mo.notebook_dir().parent / "reports" / "ablation.md")
    mo.vstack(
        [
            mo.md(
                "## Where the course ends\n\n"
                "`labkit ablation` trained both kinds of SFT and GRPO on top, then evaluated them on seen, evolved and "
                "unseen tools. Its success table (95% intervals in brackets):\n\n"
                + (first_table(ablation_text) if ablation_text else "*(no ablation report in `reports/` yet)*")
                + "\n\nNotebooks 03-05 rebuild this at a smaller size; `make demo` runs all of it headless in about 36 minutes on two CPU cores with the vLLM engine (`make vllm`)."
            )
        ]
        + [mo.image(src=str(figure), width=560) for figure in ablation_figures[:1]]
    )
    return


if __name__ == "__main__":
    app.run()
