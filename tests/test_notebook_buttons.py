"""In a real browser, a notebook opens without training anything, trains when its button is pressed, and its
shipped switch changes what it shows (notebook 04, tiny profile: GRPO takes seconds there).

marimo serves the notebook as `make lab` does, from a throwaway folder, so the runs it writes land there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser import launch, sync_playwright_or_skip
from localhost import free_port

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "04_rl_grpo.py"
ARTIFACTS = Path(__file__).parent / "artifacts"

pytestmark = pytest.mark.browser


@pytest.fixture
def marimo(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "LABKIT_PROFILE": "tiny",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),  # this checkout's labkit, whichever one the environment installed
        "XDG_CONFIG_HOME": str(tmp_path / "config"),  # marimo's user config: a fresh one
    }
    log = (tmp_path / "marimo.log").open("w")
    command = [
        sys.executable,
        "-m",
        "marimo",
        "edit",
        str(NOTEBOOK),
        "--headless",
        "--no-token",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("marimo did not start:\n" + (tmp_path / "marimo.log").read_text()[-3000:]) from None
            time.sleep(0.5)
    yield url, tmp_path
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    log.close()


def test_opening_trains_nothing_the_button_trains_and_the_shipped_switch_takes_effect(marimo):
    url, folder = marimo
    run_card = folder / "runs" / "notebook-rl" / "tiny" / "sft-trial-grpo" / "run_card.json"
    sync_playwright = sync_playwright_or_skip()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            outputs = page.locator("[id^=output-]")
            # Opening runs every cheap cell, down to the last, and stops at the buttons.
            outputs.get_by_text("Nothing is training. Press Train").wait_for(timeout=90_000)
            outputs.get_by_text("The group below is the shipped run's").wait_for(timeout=10_000)
            outputs.get_by_text("Going further").wait_for(timeout=10_000)
            assert not (folder / "runs" / "notebook-rl").exists(), "opening the notebook started GRPO"

            page.get_by_role("radio", name="about half").click()  # commit to a prediction: the shipped curves appear
            outputs.get_by_text("In the shipped run,").wait_for(timeout=30_000)

            page.get_by_role("button", name="Train 2 GRPO steps").click()
            outputs.get_by_text("Your run finished").wait_for(timeout=180_000)
            assert run_card.is_file()
            outputs.get_by_text("In your run,").wait_for(timeout=30_000)  # yours replaced the shipped run

            page.get_by_role("checkbox", name="show the shipped GRPO run").check()
            outputs.get_by_text("In the shipped run,").wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "notebook_04_buttons.png"), full_page=True)
        finally:
            browser.close()
