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
    from pathlib import Path

    import marimo as mo

    from labkit import lessons, plots
    from labkit.data import load_dataset_dir
    from labkit.evaluate import format_metric
    from labkit.models import load_tokenizer
    from labkit.profiles import resolve_profile
    from labkit.sft import SFTRunConfig, read_run_card, train_sft

    data_dir = mo.notebook_dir().parent / "data"
    return SFTRunConfig, data_dir, format_metric, lessons, load_dataset_dir, load_tokenizer, mo, plots, read_run_card, resolve_profile, train_sft


@app.cell
def _(mo, resolve_profile):
    profile = resolve_profile(mo.cli_args().get("profile"), argv=[])
    print(f"profile: {profile.name} (model: {profile.model})")
    return (profile,)


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
def _(datasets, lessons, mo, row_index, tokenizer, which):
    mo.Html(lessons.label_mask_html(datasets[which.value][row_index.value], tokenizer))
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
    fit the profile's token budget. It checkpoints as it goes: stop it, run the cell again, and it resumes.
    On a slow machine, tick **use the shipped adapters**: the ones `labkit ablation` trained, in `data/adapters/`.
    """)
    return


@app.cell
def _(data_dir, lessons, mo, profile):
    shipped_ok = profile.model == "smollm2-135m" and all(lessons.shipped_adapter(a, str(data_dir / "adapters")) for a in ("sft-golden", "sft-trial"))
    use_shipped = mo.ui.checkbox(value=False, label="use the shipped adapters (no training)", disabled=not shipped_ok)
    use_shipped
    return (use_shipped,)


@app.cell
def _(SFTRunConfig, data_dir, lessons, mo, plots, profile, read_run_card, train_sft, use_shipped):
    runs = {}
    for arm in ("sft-golden", "sft-trial"):
        if use_shipped.value:
            runs[arm] = lessons.shipped_adapter(arm, str(data_dir / "adapters"))
            continue
        config = SFTRunConfig(data=str(data_dir / "trajectories" / f"{arm[4:]}-train"), profile=profile.name, out=f"runs/notebook-sft/{profile.name}/{arm}")

        def show(points, logs, arm=arm):
            print(f"{arm}: step {logs['step']}/{logs['max_steps']}, loss {logs['loss']:.3f}")  # script mode shows no widgets
            mo.output.replace(mo.vstack([mo.md(f"**{arm}**: step {logs['step']} of {logs['max_steps']}"), plots.loss_curve({arm: points})]))

        _points, on_log = lessons.live_loss(show)
        train_sft(config, progress=False, on_log=on_log)
        runs[arm] = config.out
    cards = {arm: read_run_card(folder) for arm, folder in runs.items()}
    mo.output.replace(plots.loss_curve({arm: card["loss_curve"] for arm, card in cards.items()}))
    return cards, runs


@app.cell
def _(cards, lessons, loss_guess, mo):
    final = {arm: card["mean_loss_last_10"] for arm, card in cards.items()}
    lower = "golden" if final["sft-golden"] < final["sft-trial"] else "trial"
    mo.md(
        lessons.grade_prediction(
            loss_guess.value,
            lower,
            "Final losses (mean of the last ten steps): " + ", ".join(f"{a} {v:.3f}" for a, v in final.items()) + ". "
            "Golden rows are short and predictable: one documented call, one answer. Trial rows hold exploration and "
            "errors to react to, so there is more to learn per token. A lower loss is not better tool use: section 3 measures that.",
        )
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 3. Before and after, on tools that changed

    The base model and both fine-tuned models play the same evolved and unseen tasks. Below: success with 95%
    intervals, then one task played by each, where their outcomes differ.
    """)
    return


@app.cell
def _(lessons, mo, profile, runs):
    policies = [profile.model, runs["sft-golden"], runs["sft-trial"]]
    results = lessons.compare_policies(
        policies, ["evolved", "unseen"], n=profile.n_tasks, seeds=1, profile=profile.name, out_root=f"runs/notebook-sft/{profile.name}/eval",
        track=lambda pairs: mo.status.progress_bar(pairs, title="Evaluating base, SFT-golden and SFT-trial", show_eta=True),
    )
    return policies, results


@app.cell
def _(format_metric, lessons, mo, plots, policies, profile, results):
    names = dict(zip(policies, ("base", "SFT-golden", "SFT-trial")))
    named = {(names[p], s): m for (p, s), m in results.items()}
    table = [{"arm": a, "split": s, "success": format_metric(m, "success"), "trials/episode": format_metric(m, "trials_per_episode"), "n": m["n"]} for (a, s), m in named.items()]
    pair = lessons.paired_transcripts(results, "evolved", f"runs/notebook-sft/{profile.name}/eval", policies)
    mo.vstack(
        [plots.success_by_split(named), mo.ui.table(table, selection=None)]
        + [mo.vstack([mo.md(f"**{names[p]}**"), mo.Html(lessons.transcript_html(row))]) for p, row in pair]
    )
    return


@app.cell(hide_code=True)
def _(data_dir, lessons, mo):
    text, figures = lessons.report_parts(data_dir.parent / "reports" / "ablation.md")
    mo.vstack(
        [
            mo.md(
                "## 4. The full ablation\n\n"
                "The slice above is a few tasks. `labkit ablation --profile cpu` trains both arms at a matched token budget, "
                "evaluates all three on seen, evolved and unseen tools over three seeds, and writes this report:\n\n"
                + (text or "*(no report yet: run `labkit ablation`)*")
            )
        ]
        + [mo.image(src=str(figure), width=560) for figure in figures[:2]]
    )
    return


if __name__ == "__main__":
    app.run()
