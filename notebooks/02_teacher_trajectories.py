import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # 02 · Teacher trajectories

    **By the end of this notebook you will be able to**

    1. read a *golden* trajectory and a *trial-and-execution* trajectory for the same task, and say why the golden one breaks when the tool has changed;
    2. explain what the trial teacher learns from, and what it is never allowed to see;
    3. read a teacher dataset's statistics: trials per episode, errors and recoveries, token lengths;
    4. generate your own dataset, from the notebook or with `labkit teach`.
    """)
    return


@app.cell
def _():
    import json
    from pathlib import Path

    import marimo as mo

    from labkit import lessons, plots
    from labkit.course import open_lesson
    from labkit.data import dataset_stats, load_dataset_dir
    from labkit.models import ModelNotAvailableError, load_tokenizer
    from labkit.tasks import generate_tasks
    from labkit.teach import TeachConfig, teach, teacher_pair, teacher_success
    from labkit.teachers.scripted import DEFAULT_SLIPS, SLIPS
    from labkit.tools import load_catalog
    from labkit.trace_html import transcript_html

    _lesson = open_lesson(mo)
    profile, data_dir = _lesson.profile, _lesson.data_dir
    catalog = load_catalog()
    return (
        DEFAULT_SLIPS,
        ModelNotAvailableError,
        Path,
        SLIPS,
        json,
        TeachConfig,
        catalog,
        data_dir,
        dataset_stats,
        generate_tasks,
        lessons,
        load_dataset_dir,
        load_tokenizer,
        mo,
        plots,
        profile,
        teach,
        teacher_pair,
        teacher_success,
        transcript_html,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 1. Two teachers, one changed tool

    The **golden teacher** makes the documented calls directly: this is what trajectory-centric training imitates.
    The **trial teacher** probes each tool first with an empty call: the error lists the parameters the tool accepts
    *now*, and its next reason quotes what that revealed. Then it executes, fixing any call that fails from the error text. Pick an evolution level and a task; both teachers face the *same* changed tools and the *same* old docs.
    """)
    return


@app.cell
def _(mo):
    level_picker = mo.ui.slider(1, 4, value=3, label="evolution level", show_value=True)
    task_index = mo.ui.number(0, 49, value=0, label="task #")
    mo.hstack([level_picker, task_index], justify="start")
    return level_picker, task_index


@app.cell
def _(catalog, generate_tasks, json, lessons, level_picker, mo, task_index, teacher_pair, transcript_html):
    task = generate_tasks("evolved", 50, seed=7, level=level_picker.value, catalog=catalog)[task_index.value]
    pair = teacher_pair(catalog, task)
    changes = "; ".join(c["detail"] for c in json.loads(pair["trial"]["changes"]))
    mo.vstack(
        [
            mo.md(f"**Task:** {task.query}  \n**What changed (hidden from both):** {changes}"),
            mo.hstack(
                [
                    mo.vstack([mo.md("### Golden"), mo.Html(transcript_html(pair["golden"]))]),
                    mo.vstack([mo.md("### Trial and execution"), mo.Html(transcript_html(pair["trial"]))]),
                ],
                widths="equal",
                align="start",
            ),
        ]
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **Why the golden one breaks.** It has only ever seen the documented call, so when the tool answers
    *unexpected parameter* or *use 'fetch_…' instead*, it has no move left: it answers with whatever it has.
    The trial teacher turns the same error text into a fix. It never looks at the hidden change list above:
    everything it knows comes from the docs, the outputs and the errors, the same text a model will see.
    It also slips on purpose now and then (a wrong parameter name, a value in the wrong format, passing a whole
    result instead of one field) and recovers, so a model trained on it sees recovery too.
    """)
    return


@app.cell(hide_code=True)
def _(lessons, mo):
    golden_guess = mo.ui.radio(
        options=list(lessons.SHARE_LABELS),
        label="**Predict, then run.** On changed tools at level 2, what share of tasks does the golden teacher still solve?",
    )
    golden_guess
    return (golden_guess,)


@app.cell
def _(catalog, golden_guess, lessons, mo, profile, teacher_success):
    n_check = max(20, profile.notebook.n_tasks)
    rates = {name: teacher_success(catalog, name, "evolved", 2, n_check) for name in ("golden", "trial")}
    mo.md(
        lessons.grade_prediction(
            golden_guess.value,
            lessons.closest_label(rates["golden"], lessons.SHARE_LABELS),
            f"Measured on {n_check} level-2 tasks: golden {rates['golden']:.0%}, trial {rates['trial']:.0%}. "
            "Golden calls survive only the changes that leave the documented call working.",
        )
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 2. The shipped datasets

    `data/trajectories/` holds both teachers' trajectories for the same 400 training tasks (made by `make data`).
    Rows are in the Hugging Face conversational tool-calling format, so TRL's `SFTTrainer` reads them as they are.
    Token lengths are counted with the embedded SmolLM2 tokenizer under the lab's chat template: on a CPU,
    every token costs training time, which is why the template renders tools as short signatures.
    """)
    return


@app.cell
def _(ModelNotAvailableError, data_dir, dataset_stats, load_dataset_dir, load_tokenizer, mo, plots):
    try:
        tokenizer = load_tokenizer()
    except ModelNotAvailableError as exc:
        print(exc)
        tokenizer = None
    shipped = {name: list(load_dataset_dir(data_dir / "trajectories" / f"{name}-train")) for name in ("golden", "trial")}
    stats = {name: dataset_stats(rows, tokenizer) for name, rows in shipped.items()}
    mo.vstack(
        [
            plots.dataset_comparison(stats),
            mo.accordion({"Card: trial-train": mo.md((data_dir / "trajectories" / "trial-train" / "README.md").read_text())}),
        ]
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 3. Make your own

    Choose a teacher, a split, how often the trial teacher slips and which mistakes it makes (the shipped data
    uses the first three). The same settings always give the same bytes. The command-line twin is
    `labkit teach --teacher trial --split train --n 50 --seed 0 --mistake-rate 0.3 --slips name,format,misread --out runs/my-teacher`.
    """)
    return


@app.cell
def _(DEFAULT_SLIPS, SLIPS, mo, profile):
    teacher_picker = mo.ui.dropdown(options=["trial", "golden"], value="trial", label="teacher")
    split_picker = mo.ui.dropdown(options=["train", "seen", "evolved", "unseen"], value="train", label="split")
    n_slider = mo.ui.slider(4, 400, value=max(4, profile.notebook.n_tasks), label="tasks", show_value=True)
    slip_slider = mo.ui.slider(0.0, 1.0, step=0.1, value=0.3, label="mistake rate", show_value=True)
    slip_kinds = mo.ui.multiselect(options={f"{kind}: {meaning}": kind for kind, meaning in SLIPS.items()},
                                   value=[f"{kind}: {SLIPS[kind]}" for kind in DEFAULT_SLIPS], label="slips")
    mo.vstack([mo.hstack([teacher_picker, split_picker, n_slider, slip_slider], justify="start"), slip_kinds])
    return n_slider, slip_kinds, slip_slider, split_picker, teacher_picker


@app.cell
def _(Path, TeachConfig, lessons, mo, n_slider, slip_kinds, slip_slider, split_picker, teach, teacher_picker):
    config = TeachConfig(
        teacher=teacher_picker.value,
        split=split_picker.value,
        n=n_slider.value,
        mistake_rate=slip_slider.value,
        slips=tuple(slip_kinds.value),
        out=str(Path("runs") / f"notebook-{teacher_picker.value}-{split_picker.value}"),
    )
    with mo.status.spinner(title=f"Running the {config.teacher} teacher on {config.n} tasks..."):
        made = teach(config)
    print(f"wrote {made}")
    note = lessons.teacher_choice_note(config.teacher, config.split)
    mo.vstack(([mo.callout(mo.md(note), kind="warn")] if note else []) + [mo.md((made / "README.md").read_text())])
    return


if __name__ == "__main__":
    app.run()
