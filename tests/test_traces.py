"""labkit.trace_files, trace_queries and trace_html: finding, reading, filtering and rendering traces for the trace
viewer (no browser, no server)."""

from __future__ import annotations

import html
import json
import re

import pytest
from trace_fixtures import HOSTILE, build_lab, teacher_rows

from labkit.data import write_dataset
from labkit.episode import episode_turns, turn_kind
from labkit.evaluate import classify_failure
from labkit.trace_files import TraceAccessError, TraceFormatError, TraceLibrary, reward_weights
from labkit.trace_html import (
    MAX_TEXT,
    TURN_COLOURS,
    loss_spans_html,
    markdown_text,
    outcome_html,
    run_markdown,
    timeline_html,
    tool_docs_html,
)
from labkit.trace_queries import (
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


@pytest.fixture(scope="module")
def lab(tmp_path_factory, catalog):
    return build_lab(tmp_path_factory.mktemp("lab"), catalog)


@pytest.fixture()
def library(lab):
    return TraceLibrary(root=lab)


def test_finds_every_kind_of_run_and_nothing_else(library):
    runs = {ref.id: ref.kind for ref in library.runs()}
    # The eval run's traces/ copy, the symlinks out of runs/ and the folder outside are not runs to list.
    assert runs == {
        "data/trajectories/trial-mini": "dataset",
        "runs/eval/golden-evolved": "eval",
        "runs/eval/trial-evolved": "eval",
        "runs/grpo/rollouts": "rollouts",
    }


@pytest.mark.parametrize(
    "run_id",
    [
        "outside",
        "runs/escape",
        "runs/../outside",
        "../",
        "/etc/passwd",
        "runs/escape/episodes.jsonl",
        "runs/leak",
        "runs/leak/episodes.jsonl",
    ],
)
def test_refuses_paths_outside_the_lab_folders(library, run_id):
    with pytest.raises(TraceAccessError, match="outside the folders .* labkit view"):
        library.resolve(run_id)


def test_paths_given_on_the_command_line_may_be_read(lab):
    library = TraceLibrary([lab / "outside"], root=lab)
    assert len(library.open(str(lab / "outside")).episodes) == 1
    with pytest.raises(TraceAccessError, match="does not exist"):
        TraceLibrary([lab / "missing"], root=lab)


def test_folders_without_traces_and_tasks_files_are_format_errors(library, tmp_path):
    with pytest.raises(TraceFormatError, match="no traces at runs/eval"):
        library.resolve("runs/eval")
    (tmp_path / "data" / "broken").mkdir(parents=True)
    (tmp_path / "data" / "tasks.jsonl").write_text('{"id": "t1", "query": "q", "tools": [], "answer": "a"}\n')
    (tmp_path / "data" / "broken" / "data.parquet").write_bytes(b"PAR1 this is not parquet")
    library = TraceLibrary(root=tmp_path)
    with pytest.raises(TraceFormatError, match="is it a tasks file"):
        library.open("data/tasks.jsonl")
    with pytest.raises(TraceFormatError, match="not a readable parquet file"):
        library.open("data/broken")


def test_corrupt_and_torn_lines_are_skipped_and_counted(library):
    run = library.open("runs/eval/trial-evolved")
    assert len(run.episodes) == 8
    assert run.skipped == [f"episodes.jsonl:{n}" for n in range(9, 15)]
    assert "Skipped 6 corrupt lines" in run_markdown(run)


def test_markdown_text_shows_a_links_text_as_it_is():
    from markdown_it import MarkdownIt

    hostile = "runs/x ![i](http://evil.example/x.png) [c](https://evil.example) <img src=x> **b** `c` \\ \n# h"
    rendered = MarkdownIt("commonmark").render(f"**Could not open that link.** {markdown_text(hostile)}")
    assert "<img" not in rendered and "<a " not in rendered and "<h1" not in rendered and "<code" not in rendered
    assert "![i](http://evil.example/x.png) [c](https://evil.example) &lt;img src=x&gt; **b** `c` \\ # h" in rendered


def test_rows_are_read_back_by_offset_and_reindexed_when_the_file_grows(lab, library, catalog):
    path = lab / "runs" / "eval" / "golden-evolved" / "episodes.jsonl"
    original = [json.loads(line) for line in path.read_text().splitlines()]
    run = library.open("runs/eval/golden-evolved")
    assert library.open("runs/eval/golden-evolved") is run  # unchanged: kept
    assert run.row(5) == original[5]
    with pytest.raises(TraceAccessError, match="no episode 99"):
        run.row(99)
    with path.open("a") as f:
        f.write(json.dumps(original[0]) + "\n")
    grown = library.open("runs/eval/golden-evolved")
    assert len(grown.episodes) == len(original) + 1
    path.write_text("".join(json.dumps(r) + "\n" for r in original))


def test_parquet_rows_without_a_failure_column_are_classified(tmp_path, catalog):
    rows = teacher_rows(catalog, n_tasks=4)["golden"]
    for row in rows:
        row.pop("failure")
        row.pop("seed")
    write_dataset(rows, tmp_path / "runs" / "golden-parquet", "# golden rows without failure labels\n")
    run = TraceLibrary(root=tmp_path).open("runs/golden-parquet")
    assert [e.failure for e in run.episodes] == [classify_failure(r) or "" for r in rows]
    assert run.row(2)["messages"] == rows[2]["messages"]


def test_filters_search_and_pages(library):
    run = library.open("runs/eval/golden-evolved")
    episodes = run.episodes
    options = filter_options(episodes)
    assert options["split"] == ["evolved"] and options["outcome"] == ["solved", "failed"]
    failed = EpisodeFilter(outcome="failed").apply(episodes)
    assert failed and all(not e.success for e in failed)
    label = options["failure"][0]
    assert all(e.failure == label for e in EpisodeFilter(failure=label).apply(episodes))
    level = episodes[0].level
    assert {e.level for e in EpisodeFilter(level=level).apply(episodes)} == {level}
    family = episodes[0].families[0]
    assert all(family in e.families for e in EpisodeFilter(family=family).apply(episodes))
    tool = run.row(0)["tools_called"][0]
    assert [e.index for e in EpisodeFilter(search=tool.upper()).apply(episodes)][:1] == [0]
    assert EpisodeFilter(policy="nobody").apply(episodes) == []
    page = page_of(episodes, 99, size=3)
    assert (page.number, page.pages, page.matching, len(page.rows)) == (3, 3, 8, 2)


def test_turn_kinds_mark_errors_and_the_correction_after_them():
    assert turn_kind("trial", "unknown_parameter", None) == "trial", "a rejected probe is how a trial learns"
    assert turn_kind("execution", "unknown_parameter", "trial") == "error"
    assert turn_kind("trial", "", "error") == "trial" and turn_kind("execution", "", "error") == "correction"
    assert turn_kind("execution", "", "correction") == "execution"
    assert turn_kind("invalid", "", "trial") == "error"
    assert turn_kind("answer", "", "error") == "answer"
    row = {
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": "<execute>t</execute>",
                "tool_calls": [{"function": {"name": "f", "arguments": '{"city": "Paris"}'}}],
            },
            {"role": "tool", "content": '{"error": {"type": "unknown_parameter", "message": "use location"}}'},
            {
                "role": "assistant",
                "content": "<execute>e</execute>",
                "tool_calls": [{"function": {"name": "f", "arguments": '{"location": "Paris"}'}}],
            },
            {"role": "tool", "content": '{"temp": 20}'},
            {"role": "assistant", "content": "<answer>20</answer>"},
        ],
    }  # no phases or errors columns: read from the text and the observations
    turns = episode_turns(row)
    assert [(t.kind, t.error) for t in turns] == [("error", "unknown_parameter"), ("correction", ""), ("answer", "")]
    assert turns[0].observation.startswith('{"error"') and turns[1].arguments == '{"location": "Paris"}'


def test_every_trace_string_is_escaped(library):
    run = library.open("runs/eval/trial-evolved")
    page = timeline_html(run.row(0)) + outcome_html(run.row(0)) + tool_docs_html(run.row(0))
    assert "<script" not in page and "<img" not in page and "<b>bold" not in page
    assert html.escape(HOSTILE) in page and "&lt;b&gt;bold?&lt;/b&gt;" in page
    colours = set(re.findall(r'data-kind="(\w+)" style="border-left:5px solid (#\w+)', page))
    assert colours and all(TURN_COLOURS[kind] == colour for kind, colour in colours)


def test_long_observations_are_collapsed_and_huge_text_is_cut(library):
    row = library.open("runs/eval/trial-evolved").row(1)
    assert '<details class="tv-obs tv-long">' in timeline_html(row)
    row["messages"][-2]["content"] = "y" * (MAX_TEXT + 500)
    assert "500 more characters not shown" in timeline_html(row)


def test_docs_the_agent_saw_beside_the_real_tools(library):
    run = library.open("runs/eval/golden-evolved")
    rows = [run.row(e.index) for e in run.episodes]
    for row in rows:
        shown = tool_docs_html(row)
        assert all(f"<b>{c['operator']}</b>" in shown for c in json.loads(row["changes"]))
    renamed = [r for r in rows if any(c["operator"] == "rename_parameter" for c in json.loads(r["changes"]))]
    assert renamed and all("<mark" in tool_docs_html(r) for r in renamed)  # a parameter only one side has
    row = dict(rows[0])
    real = json.loads(row["real_tools"])
    name = real[0]["function"]["name"]
    real.append({"type": "function", "function": {**real[0]["function"], "name": f"{name}_v2"}})
    row.update(
        real_tools=json.dumps(real),
        changes=json.dumps([{"operator": "deprecate_with_redirect", "tool": name, "detail": "moved"}]),
    )
    assert "not documented" in tool_docs_html(row)  # the replacement exists only among the real tools


def test_outcome_shows_answer_gold_and_reward_components(library):
    run = library.open("runs/grpo/rollouts")
    row = run.row(0)
    shown = outcome_html(row)
    assert f'data-success="{str(row["success"]).lower()}"' in shown
    assert all(f"<td style='padding:1px 10px;border:none'>{name}</td>" in shown for name in row["rewards"])
    assert "advantage" in shown and f"{row['advantage']:+.3f}" in shown


def test_loss_spans_highlight_what_carried_loss(library):
    row = library.open("runs/grpo/rollouts").row(0)
    shown = loss_spans_html(row)
    assert shown.count('data-loss="true"') == sum(loss for _, loss in row["loss_spans"])
    assert "<tool_call>" not in shown and "&lt;tool_call&gt;" in shown
    assert "no loss_spans" in loss_spans_html({"messages": []})


def test_groups_compare_and_aggregates(library):
    rollouts = library.open("runs/grpo/rollouts")
    groups = rollout_groups(rollouts)
    assert list(groups) == [(1, 0), (1, 1), (2, 0), (2, 1)] and all(len(m) == 4 for m in groups.values())
    header, rows = group_rows(groups[(1, 0)])
    assert header[:4] == ["rollout", "episode", "reward", "advantage"] and {"outcome", "trial_info"} <= set(header)
    assert abs(sum(r[3] for r in rows)) < 1e-2  # advantages are normalised within the group

    golden, trial = library.open("runs/eval/golden-evolved"), library.open("runs/eval/trial-evolved")
    pairs = shared_tasks(golden, trial)
    assert len(pairs) == 8
    differing = [p for p in pairs if "A ✗ B ✓" in p.label]
    assert differing and pairs[: len(differing)] == differing  # outcomes that differ come first
    assert golden.episodes[pairs[0].a].task_id == trial.episodes[pairs[0].b].task_id
    assert default_comparison(library.runs()) == ("runs/eval/golden-evolved", "runs/eval/trial-evolved")

    cells = success_by_split_level(golden.episodes)
    assert sum(c["episodes"] for c in cells) == 8 and all(0 <= c["success"] <= 1 for c in cells)
    assert sum(h["episodes"] for h in trials_histogram(trial.episodes)) == 8
    assert sum(f["episodes"] for f in failure_counts(golden.episodes)) == sum(not e.success for e in golden.episodes)


def test_links_name_the_run_and_the_episode():
    assert episode_link("runs/eval/sft trial", 7) == "?run=runs%2Feval%2Fsft+trial&episode=7"


def test_grpo_reward_components_show_weighted_so_they_add_up_to_the_reward(tmp_path):
    import shutil
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "data" / "adapters" / "sft-trial-grpo"
    run = tmp_path / "runs" / "rl"
    (run / "rollouts").mkdir(parents=True)
    shutil.copy(shipped / "run_card.json", run)
    for log in (shipped / "rollouts").glob("step-*.jsonl"):
        shutil.copy(log, run / "rollouts")
    opened = TraceLibrary(root=tmp_path).open("runs/rl/rollouts")
    weights = reward_weights(opened.ref)
    assert weights is not None and weights["format"] == 0.5
    for members in rollout_groups(opened).values():
        header, rows = group_rows(members, weights)
        parts = [i for i, name in enumerate(header) if " × " in name]
        assert len(parts) == len(weights) and all(abs(sum(row[i] for i in parts) - row[2]) < 0.01 for row in rows)
    assert "format × 0.5" in outcome_html(opened.row(0), weights)
    (run / "run_card.json").unlink()
    assert reward_weights(opened.ref) is None  # no card: the components stay as logged, unweighted
