"""The trace viewer: what the agent actually did, turn by turn, for any traces the lab writes.

    labkit view [PATHS] [--port N]        (or: python apps/trace_viewer.py [PATHS] [--port N])

A thin Gradio layout over ``labkit.trace_files`` (finds and reads the traces), ``labkit.trace_queries`` (filters
them) and ``labkit.trace_html`` (renders them). It reads only inside ``data/`` and ``runs/`` of the folder it starts
in and the paths it is given, binds 127.0.0.1, makes no share link and sends no analytics. Links:
``?run=RUN&episode=N`` opens that episode.
"""

from __future__ import annotations

import argparse
import functools
import html
import os
import sys
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: it calls home otherwise

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from labkit.trace_files import TraceAccessError, TraceLibrary, reward_weights  # noqa: E402
from labkit.trace_html import (  # noqa: E402
    episode_html,
    loss_spans_html,
    markdown_text,
    outcome_html,
    phase_legend_html,
    run_markdown,
    timeline_html,
    tool_docs_html,
)
from labkit.trace_queries import (  # noqa: E402
    ANY,
    TABLE_COLUMNS,
    EpisodeFilter,
    default_comparison,
    episode_link,
    failure_counts,
    filter_options,
    group_rows,
    page_of,
    rollout_groups,
    shared_tasks,
    success_by_split_level,
    trials_histogram,
)

EVERYTHING = "any"  # the filter dropdowns' "no filter" choice
FILTER_FIELDS = ("split", "family", "level", "policy", "outcome", "failure")
CSS = """
.tv-timeline code, .tv-docs code { font-size: 12px; }
.tv-docs th { text-align: left; font-size: 12px; }
"""
# Puts the episode's link in the address bar, so the browser's own address is the link to share.
LINK_JS = (
    "(q) => { if (q) { history.replaceState(null, '', q); return location.origin + location.pathname + q; } return q; }"
)


def _user_errors(fn):
    """Show the library's typed errors in the page (and to API clients) instead of a bare 'Error'."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:  # TraceAccessError, TraceFormatError, or an API caller's malformed value
            # gr.Error renders its message as HTML, and a link's ?run= is anyone's text: escape it.
            raise gr.Error(html.escape(f"{type(exc).__name__}: {exc}"), print_exception=False) from exc

    return wrapper


def _filter(split, family, level, policy, outcome, failure, search) -> EpisodeFilter:
    def field(value):
        return ANY if value in (None, "", EVERYTHING) else str(value)

    return EpisodeFilter(
        field(split),
        field(family),
        None if field(level) == ANY else int(level),
        field(policy),
        field(outcome),
        field(failure),
        search or "",
    )


def _table(rows: list[list], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def _bars(frame: pd.DataFrame, value: str, **kwargs) -> gr.BarPlot:
    """A bar chart whose value axis includes zero (Gradio's starts at the smallest bar, which then vanishes)."""
    values = [v for v in frame[value] if v is not None] if len(frame) else []
    low, high = min([0.0, *values]), max([0.0, *values])
    return gr.BarPlot(frame, y_lim=[low, high if high > low else 1.0], **kwargs)


def build_app(paths=(), root: str | Path | None = None) -> gr.Blocks:
    """The viewer over the runs in ``ROOT/data``, ``ROOT/runs`` (ROOT: the current folder) and ``paths``."""
    library = TraceLibrary(paths, root)

    def run_choices(kind: str | None = None) -> list[tuple[str, str]]:
        return [(ref.label, ref.id) for ref in library.runs() if kind is None or ref.kind == kind]

    # ------------------------------------------------------------------ episodes: run, filters, page, episode

    @_user_errors
    def open_run(run_id: str):
        """Open a run: its summary, and every filter reset to the values this run has."""
        run = library.open(run_id)
        options = filter_options(run.episodes)
        dropdowns = [
            gr.Dropdown(choices=[EVERYTHING, *map(str, options[name])], value=EVERYTHING) for name in FILTER_FIELDS
        ]
        return run_markdown(run), *dropdowns, "", 0 if run.episodes else None

    @_user_errors
    def show_page(run_id, split, family, level, policy, outcome, failure, search, number):
        run = library.open(run_id)
        page = page_of(_filter(split, family, level, policy, outcome, failure, search).apply(run.episodes), number)
        return _table(page.rows, TABLE_COLUMNS), page.describe(), page.number

    @_user_errors
    def apply_filters(run_id, split, family, level, policy, outcome, failure, search):
        """The first page of the matching episodes, and the charts over all of them."""
        run = library.open(run_id)
        matching = _filter(split, family, level, policy, outcome, failure, search).apply(run.episodes)
        page = page_of(matching, 1)
        return _table(page.rows, TABLE_COLUMNS), page.describe(), page.number, *charts(matching)

    def charts(episodes):
        by_cell = pd.DataFrame(
            success_by_split_level(episodes), columns=["split · level", "split", "level", "success", "episodes"]
        )
        trials = pd.DataFrame(trials_histogram(episodes), columns=["trials", "episodes"])
        failures = pd.DataFrame(failure_counts(episodes), columns=["failure", "episodes"])
        return (
            gr.BarPlot(by_cell),
            _bars(trials, "episodes", sort=list(trials["trials"]) or None),
            _bars(failures, "episodes", sort=list(failures["failure"]) or None),
        )

    @_user_errors
    def show_episode(run_id: str, index: float | None):
        """One episode: the timeline, the answer against the gold
        answer with rewards, the docs against the real tools."""
        run = library.open(run_id)
        if index is None:
            return "", "", "", ""
        row = run.row(int(index))
        return (
            timeline_html(row),
            outcome_html(row, reward_weights(run.ref)),
            tool_docs_html(row),
            episode_link(run.ref.id, int(index)),
        )

    def select_episode(run_id: str, evt: gr.SelectData):
        return (int(evt.row_value[0]), *show_episode(run_id, int(evt.row_value[0])))

    # ------------------------------------------------------------------ compare and GRPO groups

    @_user_errors
    def compare_tasks(run_a: str, run_b: str):
        """The tasks both runs played (outcomes that differ first), and the first of them side by side."""
        if not run_a or not run_b:
            return gr.Dropdown(choices=[], value=None), "", ""
        pairs = shared_tasks(library.open(run_a), library.open(run_b))
        choices = [(p.label, f"{p.a},{p.b}") for p in pairs]
        first = choices[0][1] if choices else None
        return gr.Dropdown(choices=choices, value=first), *compare(run_a, run_b, first)

    @_user_errors
    def compare(run_a: str, run_b: str, pair: str | None):
        if not pair:
            return "<p>These runs share no task.</p>" if run_a and run_b else "", ""
        a, b = (int(i) for i in pair.split(","))
        return episode_html(library.open(run_a).row(a)), episode_html(library.open(run_b).row(b))

    @_user_errors
    def open_groups(run_id: str):
        """A rollout run's prompts (step, group), and the first one shown."""
        groups = rollout_groups(library.open(run_id))
        choices = [
            (f"step {step} · group {group} ({len(members)} rollouts)", f"{step},{group}")
            for (step, group), members in groups.items()
        ]
        if not choices:
            return gr.Dropdown(choices=[], value=None), *empty_group(
                "This run has no GRPO groups (rows with step and group)."
            )
        return gr.Dropdown(choices=choices, value=choices[0][1]), *show_group(run_id, choices[0][1])

    def empty_group(message: str):
        no_bars = [gr.BarPlot(pd.DataFrame(columns=["rollout", name])) for name in ("reward", "advantage")]
        return pd.DataFrame(), *no_bars, gr.Dropdown(choices=[], value=None), f"<p>{html.escape(message)}</p>", ""

    @_user_errors
    def show_group(run_id: str, key: str | None):
        """The N rollouts of one prompt: their rewards and advantages, and the first rollout's loss spans."""
        if not key:
            return empty_group("Choose a prompt.")
        step, group = (int(i) for i in key.split(","))
        members = rollout_groups(library.open(run_id)).get((step, group), [])
        if not members:
            return empty_group(f"This run has no step {step}, group {group}.")
        header, rows = group_rows(members, reward_weights(library.open(run_id).ref))
        per_rollout = pd.DataFrame(
            {"rollout": [str(r[0]) for r in rows], "reward": [r[2] for r in rows], "advantage": [r[3] for r in rows]}
        )
        choices = [(f"rollout {i} (episode {e.index})", e.index) for i, e in enumerate(members)]
        return (
            _table(rows, header),
            _bars(per_rollout[["rollout", "reward"]], "reward"),
            _bars(per_rollout[["rollout", "advantage"]], "advantage"),
            gr.Dropdown(choices=choices, value=members[0].index),
            *show_rollout(run_id, members[0].index),
        )

    @_user_errors
    def show_rollout(run_id: str, index: int | None):
        if index is None:
            return "", ""
        run = library.open(run_id)
        row = run.row(int(index))
        return loss_spans_html(row), episode_html(row, reward_weights(run.ref))

    # ------------------------------------------------------------------ the page

    with gr.Blocks(title="ToolMaster Lab · trace viewer", analytics_enabled=False) as demo:
        gr.Markdown("## Trace viewer: what the agent actually did")
        gr.HTML(phase_legend_html())
        with gr.Tabs():
            with gr.Tab("Episodes"):
                with gr.Row():
                    # allow_custom_value: a run id may also be typed or
                    # sent by an API client; the library checks every one.
                    run = gr.Dropdown(label="Run", choices=run_choices(), value=None, allow_custom_value=True, scale=5)
                    rescan = gr.Button("Rescan runs", size="sm", scale=0, min_width=120)
                run_info = gr.Markdown(
                    "Choose a run: teacher datasets under data/, evaluation and GRPO runs under runs/."
                    if library.runs()
                    else (
                        f"No runs under {library.root}/data or {library.root}/runs: "
                        "start `labkit view` in the lab's folder, or name trace files or folders after it."
                    )
                )
                with gr.Row(equal_height=True):
                    filters = [
                        gr.Dropdown(
                            label=name, choices=[EVERYTHING], value=EVERYTHING, allow_custom_value=True, min_width=110
                        )
                        for name in FILTER_FIELDS
                    ]
                    search = gr.Textbox(
                        label="search", placeholder="task id, query or tool name", min_width=180, scale=2
                    )
                table = gr.Dataframe(
                    headers=TABLE_COLUMNS,
                    interactive=False,
                    max_height=270,
                    wrap=True,
                    column_widths=["7%", "14%", "5%", "7%", "5%", "11%", "17%", "22%", "6%", "6%"],
                    label="Episodes (click one to open it)",
                    elem_id="episode-table",
                )
                with gr.Row():
                    prev_page = gr.Button("◀ previous", size="sm", scale=0, min_width=100)
                    page_no = gr.Number(value=1, precision=0, minimum=1, label="page", scale=0, min_width=80)
                    next_page = gr.Button("next ▶", size="sm", scale=0, min_width=100)
                    page_info = gr.Markdown(min_height=0)
                    episode_no = gr.Number(label="episode", precision=0, minimum=0, scale=0, min_width=90)
                    open_episode = gr.Button("Open", size="sm", scale=0, min_width=80)
                    link = gr.Textbox(label="link to this episode", buttons=["copy"], interactive=False, scale=3)
                with gr.Row():
                    with gr.Column(scale=3):
                        timeline = gr.HTML(elem_id="timeline")
                    with gr.Column(scale=2):
                        outcome = gr.HTML(elem_id="outcome")
                        docs = gr.HTML(elem_id="docs")
            with gr.Tab("Compare"):
                gr.Markdown(
                    "Two policies on the same task, side by side (for "
                    "example SFT-golden against SFT-trial on evolved tools)."
                )
                with gr.Row():
                    run_a = gr.Dropdown(label="run A", choices=run_choices(), value=None, allow_custom_value=True)
                    run_b = gr.Dropdown(label="run B", choices=run_choices(), value=None, allow_custom_value=True)
                pair = gr.Dropdown(
                    label="task (outcomes that differ first)", choices=[], value=None, allow_custom_value=True
                )
                with gr.Row():
                    html_a = gr.HTML(elem_id="compare-a")
                    html_b = gr.HTML(elem_id="compare-b")
            with gr.Tab("GRPO groups"):
                gr.Markdown("The N rollouts of one prompt, their rewards and advantages, and which text carried loss.")
                grpo_run = gr.Dropdown(
                    label="rollout run", choices=run_choices("rollouts"), value=None, allow_custom_value=True
                )
                prompt = gr.Dropdown(label="prompt (step, group)", choices=[], value=None, allow_custom_value=True)
                group_table = gr.Dataframe(interactive=False, label="rollouts of this prompt")
                with gr.Row():
                    reward_plot = gr.BarPlot(x="rollout", y="reward", title="reward per rollout", height=220)
                    advantage_plot = gr.BarPlot(x="rollout", y="advantage", title="advantage per rollout", height=220)
                rollout = gr.Dropdown(label="rollout", choices=[], value=None, allow_custom_value=True)
                with gr.Row():
                    loss_view = gr.HTML(elem_id="loss-spans")
                    rollout_view = gr.HTML(elem_id="rollout")
            with gr.Tab("Aggregates"):
                gr.Markdown("Over the episodes that match the run and filters chosen in the Episodes tab.")
                success_plot = gr.BarPlot(
                    x="split · level",
                    y="success",
                    color="split",
                    y_lim=[0, 1],
                    title="success by split and level",
                    height=260,
                )
                with gr.Row():
                    trials_plot = gr.BarPlot(x="trials", y="episodes", title="trials per episode", height=260)
                    failures_plot = gr.BarPlot(
                        x="failure", y="episodes", title="failure taxonomy", x_label_angle=-30, height=260
                    )

        filter_inputs = [run, *filters, search]
        page_outputs = [table, page_info, page_no]
        plots = [success_plot, trials_plot, failures_plot]
        episode_views = [timeline, outcome, docs, link]

        def with_link(dependency):
            return dependency.success(None, inputs=link, outputs=link, js=LINK_JS, api_visibility="private")

        opened = run.input(open_run, run, [run_info, *filters, search, episode_no], api_name="open_run")
        opened = opened.success(apply_filters, filter_inputs, [*page_outputs, *plots], api_visibility="private")
        with_link(opened.success(show_episode, [run, episode_no], episode_views, api_visibility="private"))
        # The search box listens to .change: Gradio's .input misses pasted text. The dropdowns listen to .input,
        # so that open_run resetting them does not filter six more times.
        gr.on(
            [f.input for f in filters] + [search.change],
            apply_filters,
            filter_inputs,
            [*page_outputs, *plots],
            api_name="filter",
            trigger_mode="always_last",
        )
        page_no.submit(show_page, [*filter_inputs, page_no], page_outputs, api_name="page")
        prev_page.click(
            lambda *a: show_page(*a[:-1], (a[-1] or 1) - 1),
            [*filter_inputs, page_no],
            page_outputs,
            api_visibility="private",
        )
        next_page.click(
            lambda *a: show_page(*a[:-1], (a[-1] or 1) + 1),
            [*filter_inputs, page_no],
            page_outputs,
            api_visibility="private",
        )
        with_link(
            gr.on(
                [episode_no.submit, open_episode.click],
                show_episode,
                [run, episode_no],
                episode_views,
                api_name="episode",
            )
        )
        with_link(table.select(select_episode, run, [episode_no, *episode_views], api_visibility="private"))

        rescan.click(
            lambda: [gr.Dropdown(choices=run_choices())] * 3 + [gr.Dropdown(choices=run_choices("rollouts"))],
            None,
            [run, run_a, run_b, grpo_run],
            api_name="rescan",
        )
        gr.on(
            [run_a.input, run_b.input], compare_tasks, [run_a, run_b], [pair, html_a, html_b], api_name="compare_tasks"
        )
        pair.input(compare, [run_a, run_b, pair], [html_a, html_b], api_name="compare")
        group_outputs = [prompt, group_table, reward_plot, advantage_plot, rollout, loss_view, rollout_view]
        grpo_run.input(open_groups, grpo_run, group_outputs, api_name="groups")
        prompt.input(
            show_group,
            [grpo_run, prompt],
            [group_table, reward_plot, advantage_plot, rollout, loss_view, rollout_view],
            api_name="group",
        )
        rollout.input(show_rollout, [grpo_run, rollout], [loss_view, rollout_view], api_name="rollout")

        def list_runs() -> list[dict]:
            """Every run the viewer can open: id (what ?run= takes) and kind."""
            return [{"id": ref.id, "kind": ref.kind} for ref in library.runs()]

        gr.api(list_runs, api_name="list_runs")

        linked_outputs = [run, run_info, *filters, search, *page_outputs, *plots, episode_no, *episode_views]

        def on_load(request: gr.Request):
            """Fresh run lists, the Compare view's default pair,
            and the run and episode a link names (?run=&episode=)."""
            choices, rollouts = run_choices(), run_choices("rollouts")
            pair_ids = default_comparison(library.runs()) or (None, None)
            try:
                compared = compare_tasks(*pair_ids)
            except gr.Error:  # a broken default pair must not stop the page from loading
                compared = (gr.Dropdown(choices=[], value=None), "", "")
            params = dict(request.query_params) if request else {}
            run_id, episode = params.get("run"), params.get("episode")
            nothing = (gr.Dropdown(choices=choices, value=None), *[gr.skip()] * (len(linked_outputs) - 1))
            opened_view = nothing
            if run_id:
                try:
                    if episode not in (None, "") and not str(episode).isdigit():
                        raise gr.Error(html.escape(f"the link's episode must be a number, not {episode!r}"))
                    info, *filter_updates, search_value, first = open_run(run_id)
                    run_ref = library.resolve(run_id).id
                    index = int(episode) if episode not in (None, "") else first
                    listed = (
                        choices if any(value == run_ref for _, value in choices) else [*choices, (run_ref, run_ref)]
                    )
                    opened_view = (
                        gr.Dropdown(choices=listed, value=run_ref),
                        info,
                        *filter_updates,
                        search_value,
                        *apply_filters(run_ref, *[EVERYTHING] * len(FILTER_FIELDS), ""),
                        index,
                        *show_episode(run_ref, index),
                    )
                except gr.Error as exc:
                    opened_view = (
                        gr.Dropdown(choices=choices, value=None),
                        f"**Could not open that link.** {markdown_text(html.unescape(exc.message))}",
                        *nothing[2:],
                    )
            return (
                *opened_view,
                gr.Dropdown(choices=choices, value=pair_ids[0]),
                gr.Dropdown(choices=choices, value=pair_ids[1]),
                *compared,
                gr.Dropdown(choices=rollouts, value=rollouts[0][1] if len(rollouts) == 1 else None),
            )

        load_outputs = [*linked_outputs, run_a, run_b, pair, html_a, html_b, grpo_run]
        loaded = with_link(demo.load(on_load, None, load_outputs, api_visibility="private"))

        def preselect_groups(run_id: str | None):
            """With one rollout run (the usual case), its first group shows without a click."""
            return open_groups(run_id) if run_id else (gr.skip(),) * len(group_outputs)

        loaded.then(preselect_groups, grpo_run, group_outputs, api_visibility="private")
    return demo


def launch(demo: gr.Blocks, port: int | None = None, block: bool = True) -> str:
    """Serve on 127.0.0.1 only, without a share link; returns the address (after Ctrl+C when ``block``)."""
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        share=False,
        prevent_thread_lock=True,
        quiet=True,  # Gradio would suggest share=True; this viewer never makes public links
        css=CSS,
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
        footer_links=["api"],
    )
    if block:
        print(f"Trace viewer at {url} (Ctrl+C stops it). Link to an episode: {url}?run=RUN&episode=N", flush=True)
        demo.block_thread()
    return url


def serve(paths=(), port: int | None = None) -> None:
    """Build the viewer over ./data, ./runs and ``paths`` and serve it until interrupted (``labkit view``)."""
    launch(build_app(paths), port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="trace_viewer", description="Browse trial traces: teacher datasets, eval runs, GRPO rollout groups."
    )
    parser.add_argument("paths", nargs="*", help="trace files or folders to open besides ./data and ./runs")
    parser.add_argument("--port", type=int, help="default: 7860, or the next free port")
    args = parser.parse_args(argv)
    try:
        serve(args.paths, args.port)
    except TraceAccessError as exc:
        print(f"trace viewer: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
