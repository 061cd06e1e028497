import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # 03 · Supervised fine-tuning

    **By the end of this notebook you will be able to**

    1. say which tokens of a trajectory the model is trained to write, and which it only reads;
    2. fine-tune the model on teacher trajectories with TRL's `SFTTrainer` and a LoRA adapter, and read its loss curve;
    3. compare the base model with a fine-tuned one on a tool that has changed;
    4. read the lab's first result: SFT on trial-and-execution trajectories against SFT on golden ones.

    The command-line twin of this notebook is `labkit sft` (one run) and `labkit ablation` (the whole comparison).
    """)
    return


@app.cell
def _():
    import marimo as mo

    from labkit import costs, eval_cache, lessons, notebook_runs, plots, run_logs
    from labkit.data import load_dataset_dir
    from labkit.evaluate import format_metric
    from labkit.course import open_lesson
    from labkit.models import load_tokenizer
    from labkit.sft import read_run_card, train_sft
    from labkit.trace_html import label_mask_html, transcript_html

    _lesson = open_lesson(mo)  # `python notebooks/03_sft.py --run` presses every button (headless runs, tests)
    profile, run_all, data_dir = _lesson.profile, _lesson.run_all, _lesson.data_dir
    return costs, data_dir, eval_cache, format_metric, label_mask_html, lessons, load_dataset_dir, load_tokenizer, mo, notebook_runs, plots, profile, read_run_card, run_all, run_logs, train_sft, transcript_html


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 1. What the model sees, and what it learns

    A training row is a whole episode rendered with the chat template: the system prompt, the tools' docs,
    the task, then the assistant's turns and the tools' replies. The loss is **assistant-only**: the model
    is trained on the green tokens (its reasons, calls, answers and every `<|im_end|>`) and merely reads the grey ones.
    A model trained on tool replies would learn to *invent* them.
    """)
    return


@app.cell
def _(data_dir, load_dataset_dir, load_tokenizer, profile):
    tokenizer = load_tokenizer(profile.model)
    datasets = {name: load_dataset_dir(data_dir / "trajectories" / f"{name}-train") for name in ("golden", "trial")}
    return datasets, tokenizer


@app.cell
def _(mo):
    which = mo.ui.radio(options=["trial", "golden"], value="trial", label="dataset")
    row_index = mo.ui.slider(0, 399, value=0, label="row", show_value=True)
    mo.hstack([which, row_index], justify="start")
    return row_index, which


@app.cell
def _(datasets, label_mask_html, mo, row_index, tokenizer, which):
    mo.Html(label_mask_html(datasets[which.value][row_index.value], tokenizer))
    return


@app.cell(hide_code=True)
def _(mo):
    loss_guess = mo.ui.radio(
        options=["golden", "trial", "about the same"],
        label="**Predict, then run.** Trained on the same number of tokens, which dataset ends with the lower loss?",
    )
    loss_guess
    return (loss_guess,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 2. Train

    `train_sft` builds TRL's `SFTTrainer` with a LoRA adapter on every linear layer and trains it on the rows that
    fit the profile's token budget. Nothing trains until you press **Train**; until then, and whenever the box below
    is ticked, the notebook shows the adapters `labkit ablation` trained (`data/adapters/`). Training checkpoints as
    it goes: stop it with marimo's stop button, press **Train** again, and it resumes. When it finishes, your runs
    replace the shipped ones below.
    """)
    return


@app.cell
def _(mo):
    get_sft_finished, set_sft_finished = mo.state(False)
    get_eval_finished, set_eval_finished = mo.state(0)
    return get_eval_finished, get_sft_finished, set_eval_finished, set_sft_finished


@app.cell
def _(costs, eval_cache, profile):
    speed = costs.measured_speed(profile.model, profile.name, eval_cache.eval_batch(profile.name))
    print(f"measured here: {speed.train_tokens_per_s:.0f} training tokens/s, {speed.turn_seconds(profile.eval.max_new_tokens):.1f} s a turn")
    return (speed,)


@app.cell
def _(costs, data_dir, mo, notebook_runs, profile, speed):
    sft_runs_to_train = notebook_runs.sft_configs(profile.name, data_dir)
    sft_cost = costs.sft_estimate(max(map(costs.sft_training_tokens, sft_runs_to_train.values())), len(sft_runs_to_train), speed)
    train_button = mo.ui.run_button(label="Train SFT-golden and SFT-trial")
    mo.vstack([train_button, mo.md(f"Training both arms takes {sft_cost.describe()}.")])
    return sft_runs_to_train, train_button


@app.cell
def _(data_dir, get_sft_finished, mo, notebook_runs, profile):
    shipped_sft = {a: f for a, f in notebook_runs.trained_policies(profile.name, notebook_runs.TRAINED_SOURCES[1], str(data_dir / "adapters")).items() if a in notebook_runs.SFT_ARMS}
    use_shipped = mo.ui.checkbox(value=bool(shipped_sft) and not get_sft_finished(), label="show the shipped adapters", disabled=not shipped_sft)
    mo.vstack([use_shipped, mo.md("" if shipped_sft else f"*No shipped adapters for the {profile.name} profile (they were trained at the cpu profile): press **Train**.*")])
    return shipped_sft, use_shipped


@app.cell
def _(mo, plots, run_all, run_logs, set_sft_finished, sft_runs_to_train, train_button, train_sft):
    mo.stop(not (train_button.value or run_all), mo.md("*Nothing is training. Press **Train** to train your own.*"))
    for arm, config in sft_runs_to_train.items():

        def show(points, logs, arm=arm):
            print(f"{arm}: step {logs['step']}/{logs['max_steps']}, loss {logs['loss']:.3f}")  # script mode shows no widgets
            mo.output.replace(mo.vstack([mo.md(f"**{arm}**: step {logs['step']} of {logs['max_steps']}"), plots.loss_curve({arm: points})]))

        _points, on_log = run_logs.live_loss(show)
        train_sft(config, progress=False, on_log=on_log)
    set_sft_finished(True)
    mo.output.replace(mo.md("**Both runs finished**: they replace the shipped adapters below."))
    return


@app.cell
def _(mo, notebook_runs, profile, read_run_card, shipped_sft, use_shipped):
    runs = shipped_sft if use_shipped.value else {a: f for a, f in notebook_runs.trained_policies(profile.name, notebook_runs.TRAINED_SOURCES[0]).items() if a in notebook_runs.SFT_ARMS}
    cards = {arm: card for arm, folder in runs.items() if (card := read_run_card(folder))}
    source = "the shipped adapters" if use_shipped.value else "your runs"
    mo.md(f"Showing **{source}**." if len(cards) == len(notebook_runs.SFT_ARMS) else "*No finished runs of yours yet: press **Train** above, or tick the box to see the shipped ones.*")
    return cards, runs, source


@app.cell
def _(cards, lessons, loss_guess, mo, notebook_runs, plots, source):
    mo.stop(len(cards) < len(notebook_runs.SFT_ARMS))
    mo.stop(loss_guess.value is None, mo.md("*Make your prediction above to see the loss curves.*"))
    final = {arm: card["mean_loss_last_10"] for arm, card in cards.items()}
    lower = "golden" if final["sft-golden"] < final["sft-trial"] else "trial"
    mo.vstack(
        [
            mo.md(
                lessons.grade_prediction(
                    loss_guess.value,
                    lower,
                    f"Final losses of {source} (mean of the last ten steps): " + ", ".join(f"{a} {v:.3f}" for a, v in final.items()) + ". "
                    "Golden rows are short and predictable: one documented call, one answer. Trial rows hold exploration and "
                    "errors to react to, so there is more to learn per token. A lower loss is not better tool use: section 3 measures that.",
                )
            ),
            plots.loss_curve({arm: card["loss_curve"] for arm, card in cards.items()}),
        ]
    )
    return


@app.cell(hide_code=True)
def _(eval_cache, mo, profile):
    mo.md(f"""
    ## 3. Before and after, on tools that changed

    The base model and both fine-tuned models play the same evolved and unseen tasks
    ({profile.notebook.eval_tasks} of each, at most {eval_cache.lesson_eval_config(profile.model, "evolved", profile.name).max_turns}
    turns: the ablation report's budget). Below: success with 95% intervals, then one task played by each, where their
    outcomes differ. Every evaluation is cached in `runs/eval-cache/`, shared with notebook 05: nothing is evaluated twice.
    """)
    return


@app.cell
def _(costs, eval_cache, get_eval_finished, mo, profile, runs, speed):
    get_eval_finished()  # a finished evaluation leaves fewer episodes to play
    eval_policies = [profile.model, *runs.values()]
    eval_splits = ["evolved", "unseen"]
    pending = eval_cache.pending_model_episodes(eval_policies, eval_splits, profile.name)
    eval_cost = costs.episodes_estimate(pending, eval_cache.lesson_eval_config(profile.model, "evolved", profile.name).max_turns, profile.eval.max_new_tokens, speed)
    eval_button = mo.ui.run_button(label="Evaluate base, SFT-golden and SFT-trial", disabled=not pending)
    mo.vstack([eval_button, mo.md(f"{pending} episodes left to play: {eval_cost.describe()}." if pending else "All evaluated (cached).")])
    return eval_button, eval_policies, eval_splits


@app.cell
def _(eval_button, eval_cache, eval_policies, eval_splits, mo, profile, run_all, set_eval_finished):
    mo.stop(not (eval_button.value or run_all), mo.md("*Nothing is being evaluated. Press **Evaluate** to play the episodes.*"))
    with mo.status.progress_bar(total=eval_cache.pending_model_episodes(eval_policies, eval_splits, profile.name), title="Episodes played", show_eta=True) as bar:
        eval_cache.compare_policies(eval_policies, eval_splits, profile.name, on_episode=lambda row: bar.update())
    set_eval_finished(lambda n: n + 1)
    return


@app.cell
def _(eval_cache, eval_policies, eval_splits, format_metric, get_eval_finished, lessons, mo, plots, profile, runs, transcript_html):
    get_eval_finished()
    results = eval_cache.cached_results(eval_policies, eval_splits, profile.name)
    names = {profile.model: "base", **{folder: arm for arm, folder in runs.items()}}
    named = {(names[p], s): m for (p, s), m in results.items()}
    table = [
        {"arm": a, "split": s, "success": format_metric(m, "success"), "trials/episode": format_metric(m, "trials_per_episode"),
         "error recovery": format_metric(m, "error_recovery_rate"), "n": m["n"]}
        for (a, s), m in named.items()
    ]  # fmt: skip
    pair = eval_cache.paired_transcripts("evolved", eval_policies, profile.name) if len(results) == len(eval_policies) * len(eval_splits) else []
    mo.vstack(
        ([plots.success_by_split(named), mo.ui.table(table, selection=None), mo.md(lessons.recovery_note(named))] if results else [mo.md("*No evaluations yet: press **Evaluate**. Section 4 shows the shipped ablation's numbers meanwhile.*")])
        + [mo.vstack([mo.md(f"**{names[p]}**"), mo.Html(transcript_html(row))]) for p, row in pair]
    )
    return


@app.cell(hide_code=True)
def _(data_dir, mo, notebook_runs):
    text, figures = notebook_runs.report_parts(data_dir.parent / "reports" / "ablation.md")
    mo.vstack(
        [
            mo.md(
                "## 4. The full ablation\n\n"
                "The slice above is a few tasks. `labkit ablation --profile cpu` trains SFT-golden, SFT-recover (the trial "
                "teacher without its trials) and SFT-trial at a matched token budget, evaluates them on seen, evolved and "
                "unseen tools with the same tasks and seeds, and writes a report like the shipped one, `reports/ablation.md`. "
                "Its learning curve (`reports/ablation-curve.md`) trains each arm again at more budgets, up to every training task: "
                "there golden imitation has stopped improving while the two arms that learned to fix their calls still climb. "
                "At 800 training tasks (`reports/ablation-tasks800.md`) SFT-recover beats SFT-golden on evolved + unseen by "
                "+0.11 [+0.05, +0.18]; SFT-trial wins on changed tools and loses on unseen ones, and ties golden pooled.\n\n"
                + (text or "*(no report yet: run `labkit ablation`)*")
            )
        ]
        + [mo.image(src=str(figure), width=560) for figure in figures[:2]]
    )
    return


if __name__ == "__main__":
    app.run()
