import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # 01 · The tool world

    **By the end of this notebook you will be able to**

    1. browse the lab's tool families and call any tool yourself;
    2. *evolve* a tool (rename a parameter, change a format, move an endpoint) and watch the old documentation fail;
    3. read the error a changed tool sends back, and use it to fix the call, as a trained agent should;
    4. sample the seeded, verifiable tasks the agents are trained and tested on.
    """)
    return


@app.cell
def _():
    import json

    import marimo as mo

    from labkit import lessons, plots, tool_world
    from labkit.course import open_lesson
    from labkit.env import call_once
    from labkit.tasks import SPLITS, example_arguments, generate_tasks, task_rows, task_summary
    from labkit.tools import load_catalog
    from labkit.toolset import base_toolset

    profile = open_lesson(mo).profile
    catalog = load_catalog()
    return (
        SPLITS,
        base_toolset,
        call_once,
        catalog,
        example_arguments,
        generate_tasks,
        json,
        lessons,
        mo,
        plots,
        profile,
        task_rows,
        task_summary,
        tool_world,
    )


@app.cell(hide_code=True)
def _(catalog, mo):
    mo.md(f"""
    ## 1. The catalog

    Every tool is a plain Python function with type hints and a Google-style docstring; its JSON schema,
    the documentation an agent reads, comes from `transformers.utils.get_json_schema`, so any function of
    yours drops in the same way. There are **{len(catalog)} tools in {len(catalog.families)} families**.
    The families marked *unseen* ({", ".join(catalog.unseen_families)}) are never used for training:
    they measure whether an agent copes with tools it has never met.
    """)
    return


@app.cell
def _(catalog, mo):
    family_picker = mo.ui.dropdown(options=["all"] + catalog.families, value="all", label="family")
    family_picker
    return (family_picker,)


@app.cell
def _(catalog, family_picker, mo, tool_world):
    rows = [r for r in tool_world.tool_rows(catalog) if family_picker.value in ("all", r["family"])]
    mo.ui.table(rows, selection=None, page_size=10)
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 2. Call a tool

    Pick a tool; the box starts with arguments that work. Change them and see what the environment
    sends back. Try a misspelt parameter, a number where text belongs, or a city that doesn't exist:
    every mistake comes back as a typed error, never a crash.
    """)
    return


@app.cell
def _(catalog, mo):
    tool_picker = mo.ui.dropdown(options=sorted(catalog.tools), value="get_current_weather", label="tool")
    tool_picker
    return (tool_picker,)


@app.cell
def _(catalog, example_arguments, json, mo, tool_picker):
    call_args = mo.ui.text_area(
        value=json.dumps(example_arguments(catalog, tool_picker.value) or {}), label="arguments (JSON)", full_width=True
    )
    call_args
    return (call_args,)


@app.cell
def _(base_toolset, call_args, call_once, catalog, mo, tool_picker, tool_world):
    parsed = tool_world.parse_arguments(call_args.value)
    if isinstance(parsed, str):
        shown = mo.callout(parsed, kind="warn")
    else:
        observation = call_once(base_toolset(catalog, [tool_picker.value]), tool_picker.value, parsed)
        shown = mo.callout(mo.md(tool_world.observation_markdown(observation)), kind="success" if observation.ok else "danger")
    shown
    return


@app.cell(hide_code=True)
def _(mo, tool_world):
    mo.md(
        """
    ## 3. Evolve a tool

    Real APIs change under their users. An **evolved** tool behaves differently while the agent still
    reads the **old documentation**. The levels grade how unfamiliar it has become:

    """
        + tool_world.levels_table()
    )
    return


@app.cell
def _(mo):
    evolve_tool_picker = mo.ui.dropdown(
        options=["get_current_weather", "convert_currency", "day_of_week", "get_capital"],
        value="get_current_weather",
        label="tool",
    )
    level_slider = mo.ui.slider(0, 4, value=2, label="level", show_value=True)
    seed_box = mo.ui.number(0, 999, value=0, label="seed")
    mo.hstack([evolve_tool_picker, level_slider, seed_box], justify="start")
    return evolve_tool_picker, level_slider, seed_box


@app.cell
def _(catalog, evolve_tool_picker, json, level_slider, mo, seed_box, tool_world):
    demo = tool_world.evolution_demo(catalog, evolve_tool_picker.value, level_slider.value, seed_box.value)
    changes = "\n".join(f"- **{c.operator}**: {c.detail}" for c in demo.changes) or "- nothing: level 0 is the documented tool"
    mo.vstack(
        [
            mo.hstack(
                [
                    mo.vstack([mo.md("**What the agent reads (old docs)**"), mo.md(tool_world.schema_markdown(demo.docs))]),
                    mo.vstack([mo.md("**What the tool really is now**"), mo.md(tool_world.schema_markdown(demo.real))]),
                ],
                widths="equal",
            ),
            mo.md("**What changed** (hidden from the agent)\n\n" + changes),
            mo.md(f"**Calling it as documented** with `{json.dumps(demo.arguments)}`:"),
            mo.callout(mo.md(tool_world.observation_markdown(demo.observation)), kind="success" if demo.observation.ok else "danger"),
        ]
    )
    return (demo,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    **Your turn: fix the call using only the error text.** That is exactly what the *trial* habit is for.
    Read the message above, then edit the tool name or the arguments below until the call succeeds.
    """)
    return


@app.cell
def _(demo, json, mo):
    fix_name = mo.ui.text(value=demo.tool, label="tool name")
    fix_args = mo.ui.text_area(value=json.dumps(demo.arguments), label="arguments (JSON)", full_width=True)
    mo.vstack([fix_name, fix_args])
    return fix_args, fix_name


@app.cell
def _(catalog, demo, fix_args, fix_name, mo, tool_world):
    fix_parsed = tool_world.parse_arguments(fix_args.value)
    if isinstance(fix_parsed, str):
        fix_result = mo.callout(fix_parsed, kind="warn")
    else:
        attempt = tool_world.evolution_demo(catalog, demo.tool, demo.level, demo.seed, fix_parsed, fix_name.value.strip())
        verdict = "Fixed: the changed tool accepts this call." if attempt.observation.ok else "Not yet: read the error again."
        fix_result = mo.callout(
            mo.md(f"{verdict}\n\n{tool_world.observation_markdown(attempt.observation)}"), kind="success" if attempt.observation.ok else "danger"
        )
    fix_result
    return


@app.cell(hide_code=True)
def _(lessons, mo):
    failure_guess = mo.ui.radio(
        options=list(lessons.SHARE_LABELS),
        label="**Predict, then run.** At level 1 (one interface change), what share of calls made exactly "
        "as documented will fail?",
    )
    failure_guess
    return (failure_guess,)


@app.cell
def _(catalog, failure_guess, lessons, mo, plots, profile, tool_world):
    mo.stop(failure_guess.value is None, mo.md("*Make your prediction above to see the measurement.*"))
    rates = tool_world.documented_call_failures(catalog, n_tasks=max(20, profile.notebook.n_tasks), seed=0)
    mo.vstack(
        [
            mo.md(
                lessons.grade_prediction(
                    failure_guess.value,
                    lessons.closest_label(rates[1], lessons.SHARE_LABELS),
                    f"Measured: {rates[1]:.0%} at level 1 and {rates[4]:.0%} at level 4. Some changes (a look-alike "
                    "tool, worse docs) don't break the documented call, but every one of them can mislead an agent "
                    "that never checks.",
                )
            ),
            plots.failure_by_level(rates),
        ]
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 4. Tasks

    A task is a question, the tools offered, and a **verifiable gold answer** with a checker
    (`exact`, `number` with a tolerance, `set`, or `contains`). Most tasks take one hop; about one in four or five
    chains two or three (the capital of a country, then the weather there), so a small sample may hold only
    one-hop tasks: the *hops* chart below counts them. The same seed always gives the same tasks,
    byte for byte. The `evolved` split changes the tools the task calls, at the level the task records.
    """)
    return


@app.cell
def _(SPLITS, mo):
    split_picker = mo.ui.dropdown(options=list(SPLITS), value="evolved", label="split")
    n_slider = mo.ui.slider(4, 200, value=100, label="tasks", show_value=True)
    task_seed = mo.ui.number(0, 999, value=0, label="seed")
    mo.hstack([split_picker, n_slider, task_seed], justify="start")
    return n_slider, split_picker, task_seed


@app.cell
def _(catalog, generate_tasks, mo, n_slider, plots, split_picker, task_rows, task_seed, task_summary):
    tasks = generate_tasks(split_picker.value, n_slider.value, task_seed.value, catalog=catalog)
    print(f"sampled {len(tasks)} {split_picker.value} tasks")
    mo.vstack([mo.ui.table(task_rows(tasks), selection=None, page_size=8), plots.task_summary(task_summary(tasks))])
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## What's next

    In **02** a teacher writes two kinds of trajectories for these tasks: golden ones (the right call, once)
    and trial-and-execution ones (probe, read the error, fix, answer). Same commands without the notebook:
    `labkit tools list`, `labkit tools evolve get_current_weather --level 2`,
    `labkit tasks generate --split evolved --n 100 --seed 0 --out data/evolved.jsonl`.
    """)
    return


if __name__ == "__main__":
    app.run()
