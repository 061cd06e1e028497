import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # 04 · Reinforcement learning with GRPO

    **By the end of this notebook you will be able to**

    1. say what each component of the lab's episode reward pays for, and switch components on and off;
    2. read a GRPO group: one task played several times, each episode's reward, and the advantage GRPO turns it into;
    3. show how a policy can game a reward (guessing, farming trials, repeating a failing call) and how the guards stop it;
    4. run a short GRPO training run in the live tool environment and read its reward, success and trial curves.

    The command-line twin of this notebook is `labkit rl`.
    """)
    return


@app.cell
def _():
    import marimo as mo

    from labkit import costs, lessons, notebook_runs, plots, reward_playground, run_logs
    from labkit.course import open_lesson
    from labkit.models import load_model
    from labkit.rewards import COMPONENTS, RewardConfig
    from labkit.rl import train_rl
    from labkit.tasks import load_tasks
    from labkit.tools import load_catalog
    from labkit.trace_html import transcript_html

    _lesson = open_lesson(mo)  # `python notebooks/04_rl_grpo.py --run` presses every button (headless runs, tests)
    profile, run_all, data_dir = _lesson.profile, _lesson.run_all, _lesson.data_dir
    return COMPONENTS, RewardConfig, costs, data_dir, lessons, load_catalog, load_model, load_tasks, mo, notebook_runs, plots, profile, reward_playground, run_all, run_logs, train_rl, transcript_html


@app.cell(hide_code=True)
def _(lessons, mo):
    mo.md(
        "## 1. GRPO in one paragraph\n\n"
        "SFT (notebook 03) copied a teacher. RL lets the model act and rewards what worked. **GRPO** (Group Relative "
        "Policy Optimization) plays each task several times, a *group* of episodes, scores every episode, and compares "
        "each score with the rest of its group: its **advantage** is its reward minus the group's mean, divided by the "
        "group's spread. The tokens of better-than-average episodes are made more likely, those of worse ones less "
        "likely. No second network judges the episodes: the group is the baseline. Here an episode is a whole live "
        "episode, trials, errors and all, in the same environment evaluation uses.\n\n"
        "The reward is a weighted sum of named components (`labkit/rewards.py`):\n\n"
        "| component | what it pays for |\n|:--|:--|\n"
        + "\n".join(f"| `{name}` | {meaning} |" for name, meaning in lessons.REWARD_MEANINGS.items())
    )
    return


@app.function
def grpo_advantages(rewards: list[float]) -> list[float]:
    """GRPO's advantage of each episode in one group (one task played several times), from the episodes' rewards.

    An advantage is how far an episode's reward lies above its group's mean, measured in the group's spread: the
    sample standard deviation, as TRL computes it (``scale_rewards="group"``). The 1e-4 keeps a group whose rewards
    are all equal from dividing by zero; there every advantage is 0, and GRPO learns nothing from that group.
    A group of one episode has nothing to be compared with: its advantage is 0.
    The trainer uses ``labkit.rewards.group_advantages``, and a test checks that the two agree.
    """
    mean = sum(rewards) / len(rewards)
    if len(rewards) == 1:
        return [0.0]
    spread = (sum((r - mean) ** 2 for r in rewards) / (len(rewards) - 1)) ** 0.5
    return [(r - mean) / (spread + 1e-4) for r in rewards]


@app.cell(hide_code=True)
def _(mo):
    _groups = [[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.5, 0.9, -0.3, 0.4]]
    mo.md(
        "The advantage in code is the function `grpo_advantages` above. On four groups of four episodes:\n\n"
        "| rewards | advantages |\n|:--|:--|\n"
        + "\n".join(f"| {g} | {[round(a, 2) for a in grpo_advantages(g)]} |" for g in _groups)
        + "\n\nThe one solved episode of the first group gets a large push; in the second, half the group is pushed "
        "up and half down; the third group, all failures, teaches nothing; in the last, with rewards of several "
        "components, each episode is pushed by where it stands in its group."
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 2. The reward playground

    One training task played several times by the model GRPO starts from, at the sampling temperature training uses,
    so the episodes differ. It opens on a group the shipped GRPO run played in its last step (as it logged it); press
    **Play** to have the model play a task you pick, live. Then switch reward components on and off and move their
    weights: the episodes stay the same, their rewards and advantages change.
    """)
    return


@app.cell
def _(data_dir, load_tasks, mo, notebook_runs, profile, reward_playground, run_logs):
    tasks = load_tasks(str(data_dir / "tasks" / "train.jsonl"))
    rl_config = notebook_runs.notebook_rl_config(profile.name, data_dir)
    shipped_rl, shipped_note = notebook_runs.shipped_rl_status(profile.name, str(data_dir / "adapters"))
    shipped_group = reward_playground.logged_playground_group(shipped_rl, tasks) if shipped_rl else None
    shipped_history = run_logs.run_history(shipped_rl)
    get_played, set_played = mo.state(None)
    return get_played, rl_config, set_played, shipped_group, shipped_history, shipped_note, shipped_rl, tasks


@app.cell
def _(costs, profile, rl_config):
    speed = costs.measured_speed(profile.model, profile.name, rl_config.prompts_per_step * rl_config.num_generations)
    print(f"measured here: {speed.train_tokens_per_s:.0f} training tokens/s, {speed.turn_seconds(rl_config.max_new_tokens):.1f} s a turn")
    return (speed,)


@app.cell
def _(mo, profile, reward_playground, tasks):
    task_options = reward_playground.task_options(tasks)
    task_pick = mo.ui.dropdown(options=task_options, value=next(iter(task_options)), label="task")
    group_size = mo.ui.slider(2, 8, value=reward_playground.group_size(profile.name), label="episodes in the group", show_value=True)
    draw = mo.ui.number(start=0, stop=999, value=0, label="seed")
    mo.vstack([task_pick, mo.hstack([group_size, draw], justify="start")])
    return draw, group_size, task_pick


@app.cell
def _(costs, group_size, mo, rl_config, run_logs, shipped_history, speed):
    play_cost = costs.episodes_estimate(group_size.value, rl_config.max_turns, rl_config.max_new_tokens, speed, run_logs.mean_turns(shipped_history))
    play_button = mo.ui.run_button(label=f"Play the task {group_size.value} times")
    mo.vstack([play_button, mo.md(f"Playing takes {play_cost.describe()}, loading the model included only the first time.")])
    return (play_button,)


@app.cell
def _(data_dir, draw, group_size, load_model, mo, notebook_runs, play_button, profile, reward_playground, run_all, set_played, task_pick, tasks):
    mo.stop(not (play_button.value or run_all), mo.md("*The group below is the shipped run's. Press **Play** for your own.*"))
    init, init_note = notebook_runs.rl_init(profile.name, str(data_dir / "adapters"))
    with mo.status.spinner(title=f"Loading {init}, then playing the task {group_size.value} times..."):
        policy = load_model(init, profile=profile.name)
        set_played(reward_playground.play_group(policy, tasks[task_pick.value], group_size.value, profile.name, seed=draw.value))
    print(f"played {group_size.value} episodes with {init}")
    mo.md(init_note)
    return


@app.cell
def _(get_played, mo, shipped_group):
    group = get_played() or shipped_group
    mo.stop(group is None, mo.md("*No group to score yet: press **Play** above (there is no shipped GRPO run in `data/adapters/`).*"))
    mo.md(f"**{'Your group' if get_played() else 'A group from the shipped GRPO run'}**, task: {group.task.query} "
          f"(gold answer: `{group.task.answer}`, evolution level {group.task.level})")  # fmt: skip
    return (group,)


@app.cell
def _(COMPONENTS, RewardConfig, mo):
    defaults = RewardConfig()
    switches = mo.ui.dictionary({name: mo.ui.switch(value=True, label=name) for name in COMPONENTS})
    weights = mo.ui.dictionary({name: mo.ui.slider(0.0, 2.0, step=0.05, value=getattr(defaults, name), label="weight", show_value=True) for name in COMPONENTS})
    mo.vstack([mo.md("**Reward components**: switch, weight")] + [mo.hstack([switches[name], weights[name]], justify="start") for name in COMPONENTS])
    return switches, weights


@app.cell
def _(reward_playground, switches, weights):
    reward = reward_playground.reward_config(weights.value, switches.value)
    return (reward,)


@app.cell
def _(group, mo, plots, reward, reward_playground):
    group_table = reward_playground.score_group(group, reward)
    mo.vstack([plots.group_chart(group_table), mo.ui.table(group_table, selection=None)])
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Each column is one component times its weight; they add up to the reward. `turns` lists what the episode did
    (✗ marks a turn whose call failed or could not be read). Things to try:

    - switch **everything but `outcome`** off: in a group where no episode solves the task, every advantage is 0.
      GRPO learns nothing from a group whose episodes all score the same;
    - switch `outcome` off and raise `format`: now the best-*formatted* episode is pushed up, solved or not;
    - raise `exec_errors`: episodes that fail after trying are punished more than episodes that never try at all.
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    scale_guess = mo.ui.radio(
        options=["they double", "they stay the same", "they halve"],
        label="**Predict, then run.** Double every weight. What happens to the advantages?",
    )
    scale_guess
    return (scale_guess,)


@app.cell
def _(group, lessons, mo, reward, reward_playground, scale_guess):
    before, after = reward_playground.scaled_weights_check(group, reward)
    mo.md(
        lessons.grade_prediction(
            scale_guess.value,
            "they stay the same",
            f"Advantages now: {before}; with every weight doubled: {after}. Doubling every reward doubles the group's mean "
            "and its spread, and GRPO divides one by the other, so only the *ranking and relative gaps* inside a group "
            "matter, never the reward's scale. What does matter is the balance between components.",
        )
    )
    return


@app.cell
def _(group, mo):
    episode_pick = mo.ui.dropdown(options={f"episode {i + 1}": i for i in range(len(group.rows))}, value="episode 1", label="read one episode")
    episode_pick
    return (episode_pick,)


@app.cell
def _(episode_pick, group, mo, transcript_html):
    mo.Html(transcript_html(group.rows[episode_pick.value]))
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 3. Collapse modes, shown on purpose

    An RL policy optimises the reward you wrote, not the one you meant. If some behaviour earns more than honest
    work, the policy drifts to it and the run *collapses*: reward goes up, tool use and success go down.
    Three crafted policies do on purpose what a GRPO run finds by accident (`labkit/policies.py`):

    - the **guesser** answers "42" at once: no call can fail, no turn is wasted;
    - the **trial farmer** calls the first tool as a *trial*, over and over: failed trials are free;
    - the **repeater** sends the same failing call again and again, ignoring what the error says.

    Below, they play 30 evaluation tasks whose tools changed, next to the two scripted teachers, and each is scored
    by **your** weights from the playground, once with the guards off and once with them on.
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    cheat_guess = mo.ui.radio(
        options=["golden teacher", "guesser"],
        label="**Predict, then run.** With the guards off, who earns more reward on changed tools: the golden teacher "
        "(makes the documented calls honestly) or the guesser (answers 42 at once)?",
    )
    cheat_guess
    return (cheat_guess,)


@app.cell
def _(data_dir, load_catalog, load_tasks, reward_playground):
    collapse = reward_playground.collapse_episodes(load_catalog(), load_tasks(str(data_dir / "tasks" / "evolved.jsonl"))[:30])
    print(f"played {sum(map(len, collapse.values()))} scripted episodes")
    return (collapse,)


@app.cell
def _(collapse, mo, plots, reward, reward_playground):
    collapse_rows = reward_playground.collapse_table(collapse, reward)
    mo.vstack([plots.collapse_chart(collapse_rows), mo.ui.table(collapse_rows, selection=None)])
    return (collapse_rows,)


@app.cell
def _(cheat_guess, collapse_rows, lessons, mo):
    mo.md(
        lessons.grade_prediction(
            cheat_guess.value,
            lessons.best_cheat(collapse_rows),
            "Under your current weights. With the default ones the guesser wins: the golden teacher calls changed tools "
            "the documented way, its calls fail, `exec_errors` charges for the failures and `budget` for the turns they "
            "take, while the guesser never calls anything, so nothing of its can fail, and it is done in one turn. GRPO "
            "would push a policy from honest calls to guessing. The `no_call` guard charges an episode without a tool call, and with it on the guesser falls "
            "below both teachers; `trial_overflow` and `repeated_failure` do the same for the farmer and the repeater. "
            "The trial teacher wins either way: it learns the changed tool from its trials and solves the task.",
        )
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    Two more collapse modes show up in a real run's curves rather than in one policy:

    - **no signal**: when every episode of a group scores the same (all fail, say), every advantage is 0 and the
      group teaches nothing. The curves call it *groups with one reward*. A base model that never calls a tool well
      gives GRPO almost nothing but such groups; that is why the lab fine-tunes first (SFT) and runs GRPO after;
    - **drift**: the policy wanders far from where it started and forgets the format. GRPO's KL term (`beta`) holds it
      near the starting policy; the curves log the KL.
    """)
    return


@app.cell(hide_code=True)
def _(mo, rl_config, run_logs, shipped_history):
    shipped_step = run_logs.median_step_seconds(shipped_history or [])
    mo.md(f"""
    ## 4. A short GRPO run

    `train_rl` runs TRL's `GRPOTrainer` with the lab's rollout engine as its `rollout_func`: each step plays a
    group of live episodes for each of a few training tasks, scores them with the default reward (guards on), and
    takes one LoRA step. The tokens the model wrote carry the loss; the tool replies it read carry none.

    This run: **{rl_config.steps} steps** of {rl_config.prompts_per_step} tasks × {rl_config.num_generations} episodes,
    from `{rl_config.init}`, into `{rl_config.out}`. Nothing trains until you press **Train**; the estimate beside it is
    measured on this machine now{f" (the shipped run took a median {shipped_step:.0f} s a step of 16 episodes on two cores)" if shipped_step else ""}.
    The run checkpoints as it goes: stop it with marimo's stop button, press **Train** again, and it resumes. Until it
    finishes, and whenever the box is ticked, the curves below are the shipped run's.
    """)
    return


@app.cell
def _(mo):
    get_rl_finished, set_rl_finished = mo.state(False)
    return get_rl_finished, set_rl_finished


@app.cell
def _(get_rl_finished, mo, shipped_note, shipped_rl):
    use_shipped = mo.ui.checkbox(value=shipped_rl is not None and not get_rl_finished(), label="show the shipped GRPO run", disabled=shipped_rl is None)
    mo.vstack([use_shipped, mo.md(shipped_note)])
    return (use_shipped,)


@app.cell
def _(costs, mo, rl_config, run_logs, shipped_history, speed):
    rl_cost = costs.grpo_estimate(
        rl_config.steps, rl_config.prompts_per_step * rl_config.num_generations, rl_config.max_turns, rl_config.max_new_tokens, speed,
        run_logs.mean_turns(shipped_history),
    )  # fmt: skip
    rl_button = mo.ui.run_button(label=f"Train {rl_config.steps} GRPO steps")
    mo.vstack([rl_button, mo.md(f"Training takes {rl_cost.describe()}.")])
    return (rl_button,)


@app.cell
def _(mo, plots, rl_button, rl_config, run_all, run_logs, set_rl_finished, train_rl):
    mo.stop(not (rl_button.value or run_all), mo.md("*Nothing is training. Press **Train** to run GRPO yourself.*"))

    def show(history, logs):
        print(run_logs.progress_line(logs))  # script mode shows no widgets
        mo.output.replace(mo.vstack([mo.md(f"**GRPO** {run_logs.progress_line(logs)}"), plots.rl_curves({"this run": history})]))

    _history, on_log = run_logs.live_rl(show)
    with mo.status.spinner(title="GRPO: playing the first step's episodes..."):
        train_rl(rl_config, progress=False, on_log=on_log)
    set_rl_finished(True)
    mo.output.replace(mo.md("**Your run finished**: its curves replace the shipped ones below."))
    return


@app.cell(hide_code=True)
def _(mo):
    spread_guess = mo.ui.radio(
        options=["almost none", "about half", "almost all"],
        label="**Predict, then look.** In this short run, what share of groups had every episode scored the same (and so taught nothing)?",
    )
    spread_guess
    return (spread_guess,)


@app.cell
def _(rl_config, run_logs, shipped_history, shipped_rl, use_shipped):
    rl_run = shipped_rl if use_shipped.value else rl_config.out
    rl_history = shipped_history if use_shipped.value else run_logs.run_history(rl_config.out)
    run_label = "the shipped run" if use_shipped.value else "your run"
    return rl_history, rl_run, run_label


@app.cell
def _(lessons, mo, plots, rl_history, rl_run, run_label, run_logs, spread_guess):
    mo.stop(not rl_history, mo.md("*No finished run of yours yet: press **Train** above, or tick the box to see the shipped one.*"))
    mo.stop(spread_guess.value is None, mo.md("*Answer the question above to see the curves.*"))
    zero_share = run_logs.zero_spread_share(rl_history)
    mo.vstack(
        [
            mo.md(
                lessons.grade_prediction(
                    spread_guess.value,
                    lessons.closest_label(zero_share, {"almost none": 0.0, "about half": 0.5, "almost all": 1.0}),
                    f"In {run_label}, {zero_share:.0%} of groups had a single reward. A policy that writes noise (the tiny "
                    "model, or a base model that never calls a tool) scores every episode alike, so GRPO has nothing to compare. "
                    "The SFT-trial adapter already calls tools, sometimes well, so its groups differ and GRPO can rank them. "
                    "More episodes per group, or a warmer temperature, make single-reward groups rarer, at the price of more generation.",
                )
            ),
            plots.rl_curves({run_label: rl_history}),
            mo.md(lessons.success_curve_note(rl_run)),
            mo.ui.table(run_logs.history_table(rl_history), selection=None, label="per step: the reward's components are means, unweighted"),
        ]
    )
    return


@app.cell
def _(mo, rl_run, run_logs):
    logged = run_logs.logged_group(rl_run)
    mo.vstack(
        [
            mo.md(
                "**One group from the run**, as the trainer scored it: the weighted components, the reward and TRL's own advantage "
                "(the same numbers the playground computes). `labkit view` shows every group with the text that carried loss."
            ),
            mo.ui.table(logged, selection=None) if logged else mo.md(f"*No rollout log in `{rl_run}/rollouts`.*"),
        ]
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## 5. Going further

    - The full cpu run: `labkit rl --init data/adapters/sft-trial --profile cpu --out runs/rl-sft-trial`
      (6 steps of 16 episodes; the shipped run, 10 steps, took a median of 159 s a step on two CPU cores with
      `make vllm`, see its `run_card.json`; rerun the command to resume).
    - Did it help? On the lab's ablation (`reports/ablation.md`, 100 tasks x 3 seeds a split) ten steps added
      +0.008 [-0.007, +0.025] to SFT-trial's success on evolved + unseen tools: inside the noise. Thirty steps
      (`reports/ablation-grpo30.md`) moved the policy six times as far from where it started and still added
      -0.010 [-0.050, +0.030]. Each step learns from 16 episodes; the gpu profile's 200 steps are the scale where
      GRPO gets a fair test.
    - Train with a reward of your own: `--reward format=0 --reward guards=0` switches components off. With the
      guards off, watch the tool-call rate in the curves.
    - Browse the run's groups, rewards, advantages and loss-carrying text: `labkit view runs/rl-sft-trial`.
    - Does RL help on changed and unseen tools? Evaluate it as in notebook 05:
      `labkit eval --policy runs/rl-sft-trial --split evolved`.
    """)
    return


if __name__ == "__main__":
    app.run()
