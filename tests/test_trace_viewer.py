"""The trace viewer app: its API through gradio_client, and the page in headless Chromium (Playwright).

The app runs on 127.0.0.1 over a small lab folder (tests/trace_fixtures.py) with corrupt lines, an observation
holding <script>, GRPO groups, and a symlink out of runs/. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from urllib.parse import urlencode

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
from browser import launch, sync_playwright_or_skip  # noqa: E402
from trace_fixtures import HOSTILE, build_lab  # noqa: E402

from labkit.cli import main as labkit_main  # noqa: E402
from labkit.trace_files import TraceLibrary  # noqa: E402
from labkit.trace_html import TURN_COLOURS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).parent / "artifacts"
ANY = ["any"] * 6


def _load_app():
    spec = importlib.util.spec_from_file_location("trace_viewer", REPO / "apps" / "trace_viewer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def viewer(tmp_path_factory, catalog):
    """(address, lab folder) of the app serving the fixture lab on 127.0.0.1."""
    lab = build_lab(tmp_path_factory.mktemp("viewer-lab"), catalog)
    app = _load_app()
    demo = app.build_app(root=lab)
    url = app.launch(demo, block=False)
    yield url, lab
    demo.close(verbose=False)


@pytest.fixture(scope="module")
def client(viewer):
    from gradio_client import Client

    client = Client(viewer[0], verbose=False)
    yield client
    client.close()


def test_binds_localhost_only(viewer):
    assert viewer[0].startswith("http://127.0.0.1:")


def test_lists_the_runs(client):
    runs = {r["id"]: r["kind"] for r in client.predict(api_name="/list_runs")}
    assert runs == {
        "data/trajectories/trial-mini": "dataset",
        "runs/eval/golden-evolved": "eval",
        "runs/eval/trial-evolved": "eval",
        "runs/grpo/rollouts": "rollouts",
    }


def test_opening_a_run_reports_its_size_and_the_lines_it_skipped(client):
    info, split, family, level, policy, outcome, failure, search, first = client.predict(
        "runs/eval/trial-evolved", api_name="/open_run"
    )
    assert "8 episodes" in info and "Skipped 6 corrupt lines" in info
    # Each filter comes back reset, offering the values this run has.
    assert split == {"__type__": "update", "choices": [["any", "any"], ["evolved", "evolved"]], "value": "any"}
    assert [c[0] for c in outcome["choices"]] == ["any", "solved", "failed"] and (search, first) == ("", 0)


def test_filters_and_pages(client, viewer):
    episodes = TraceLibrary(root=viewer[1]).open("runs/eval/golden-evolved").episodes
    failed = [e for e in episodes if not e.success]
    table, info, page, *plots = client.predict(
        "runs/eval/golden-evolved", *ANY[:4], "failed", "any", "", api_name="/filter"
    )
    assert [row[0] for row in table["data"]] == [e.index for e in failed]
    assert all(row[7].startswith("failed: ") for row in table["data"]) and f"({len(failed)} matching episodes)" in info
    assert len(plots) == 3
    table, info, page = client.predict("runs/eval/golden-evolved", *ANY, "ZZZ-no-such-task", 1, api_name="/page")
    assert info == "page 1 of 1 (0 matching episodes)"
    _, _, page = client.predict("runs/eval/golden-evolved", *ANY, "", 99, api_name="/page")
    assert page == 1


def test_episodes_render_escaped_with_a_link(client):
    timeline, outcome, docs, link = client.predict("runs/eval/trial-evolved", 0, api_name="/episode")
    assert "<script" not in timeline and "<img" not in timeline and "&lt;script&gt;" in timeline
    assert 'data-kind="trial"' in timeline and "tv-outcome" in outcome and "documentation the agent saw" in docs
    assert link == "?run=runs%2Feval%2Ftrial-evolved&episode=0"


@pytest.mark.parametrize("run_id", ["runs/escape", "/etc", "runs/../outside", "runs/leak"])
def test_paths_outside_the_lab_are_refused(client, run_id):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="TraceAccessError: .* is outside the folders the trace viewer may read"):
        client.predict(run_id, api_name="/open_run")
    with pytest.raises(AppError, match="TraceAccessError"):
        client.predict(run_id, 0, api_name="/episode")


def test_compare_two_policies_on_the_same_task(client):
    pairs, left, right = client.predict(
        "runs/eval/golden-evolved", "runs/eval/trial-evolved", api_name="/compare_tasks"
    )
    assert len(pairs["choices"]) == 8 and "A ✗ B ✓" in pairs["choices"][0][0]  # outcomes that differ first
    pair = pairs["value"]
    task = re.search(r"task <b>([\w-]+)</b>", left).group(1)
    assert f"task <b>{task}</b>" in right and "teacher:golden" in left and "teacher:trial" in right
    again = client.predict("runs/eval/golden-evolved", "runs/eval/trial-evolved", pair, api_name="/compare")
    assert list(again) == [left, right]


def test_grpo_groups_show_rewards_advantages_and_loss(client):
    prompts, table, rewards, advantages, rollouts, loss, episode = client.predict(
        "runs/grpo/rollouts", api_name="/groups"
    )
    assert [c[1] for c in prompts["choices"]] == ["1,0", "1,1", "2,0", "2,1"] and prompts["value"] == "1,0"
    assert (
        [c[1] for c in rollouts["choices"]] == [0, 1, 2, 3]
        and len(table["data"]) == 4
        and table["headers"][:4] == ["rollout", "episode", "reward", "advantage"]
    )
    assert 'data-loss="true"' in loss and "reward component" in episode
    table, *_ = client.predict("runs/grpo/rollouts", "2,1", api_name="/group")
    assert [row[1] for row in table["data"]] == [12, 13, 14, 15]
    loss, episode = client.predict("runs/grpo/rollouts", 13, api_name="/rollout")
    assert "advantage" in episode


def test_labkit_view_refuses_missing_paths(capsys):
    assert labkit_main(["view", "no/such/runs"]) == 2
    assert "no/such/runs does not exist" in capsys.readouterr().err


def test_the_browser_test_fails_under_ci_instead_of_skipping(monkeypatch):
    missing = Path("/nonexistent/chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the browser test"):
        sync_playwright_or_skip(missing)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no browser at /nonexistent/chromium"):
        sync_playwright_or_skip(missing)


def _colour(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


@pytest.mark.browser
def test_browser_opens_filters_and_renders_safely(viewer):
    sync_playwright = sync_playwright_or_skip()
    url, lab = viewer
    golden = TraceLibrary(root=lab).open("runs/eval/golden-evolved")
    failed = [e for e in golden.episodes if not e.success]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(url)

        # Open a run from the picker.
        page.get_by_label("Run").click()
        page.get_by_role("option", name="runs/eval/golden-evolved (eval)").click()
        page.get_by_text("8 episodes, opened in").wait_for()
        page.locator("#timeline .tv-turn").first.wait_for()

        # Filter to the failures.
        page.get_by_label("outcome").click()
        page.get_by_role("option", name="failed", exact=True).click()
        page.get_by_text(f"({len(failed)} matching episodes)").wait_for()

        # Open an episode from the table.
        target = failed[-1]
        page.locator("#episode-table").get_by_text(target.task_id, exact=True).click()
        page.locator("#timeline").get_by_text(target.task_id).wait_for()
        page.wait_for_function(f"location.search.includes('episode={target.index}')")  # the address bar is the link

        turns = page.locator("#timeline .tv-turn")
        assert turns.count() == len(golden.row(target.index)["phases"])
        for i in range(turns.count()):
            kind = turns.nth(i).get_attribute("data-kind")
            assert turns.nth(i).evaluate("e => getComputedStyle(e).borderLeftColor") == _colour(TURN_COLOURS[kind])
        assert page.locator("#outcome .tv-outcome").get_attribute("data-success") == "false"
        page.screenshot(path=str(ARTIFACTS / "trace_viewer_episode.png"), full_page=True)

        # A deep link to the episode whose observation holds <script> and <img onerror>.
        page.goto(f"{url}?run=runs/eval/trial-evolved&episode=0")
        page.locator("#timeline").get_by_text("window.__pwned = 1").wait_for()
        timeline = page.locator("#timeline")
        assert HOSTILE in timeline.inner_text() and "<b>bold?</b>" in timeline.inner_text()
        assert timeline.locator("script, img, b:text('bold?')").count() == 0
        assert 'onerror="window.__pwned = 3"' in page.locator("#episode-table").inner_text()  # a policy name, as text
        assert page.locator("#episode-table img").count() == 0
        assert page.evaluate("window.__pwned") is None
        page.screenshot(path=str(ARTIFACTS / "trace_viewer_escaped.png"), full_page=True)

        # The lab's only GRPO run is open in its tab without a click.
        page.get_by_role("tab", name="GRPO groups").click()
        page.locator("#rollout .tv-rewards").wait_for(timeout=15_000)

        # A link outside the lab is refused in words, not opened.
        page.goto(f"{url}?run=runs/escape&episode=0")
        page.get_by_text("Could not open that link").wait_for()
        assert "outside the folders the trace viewer may read" in page.locator("body").inner_text()

        # A crafted link's text is shown as text: no outside image, no outside link.
        crafted = "![p](http://example.invalid/pixel.png) [click](http://example.invalid/)"
        for query, shown in (
            ({"run": crafted}, crafted),
            (
                {"run": "runs/eval/trial-evolved", "episode": "[x](http://example.invalid/e)"},
                "[x](http://example.invalid/e)",
            ),
        ):
            page.goto(f"{url}?{urlencode(query)}")
            page.get_by_text("Could not open that link").wait_for()
            assert shown in page.locator("body").inner_text()
            assert page.locator("img[src*='example.invalid'], a[href*='example.invalid']").count() == 0
        browser.close()
    outside = [u for u in requests if not u.startswith(url.rstrip("/")) and not u.startswith("data:")]
    assert outside == [], f"the page reached beyond the viewer: {outside}"
