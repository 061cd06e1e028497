"""Headless Debian Chromium through Playwright, for the browser
tests (Playwright cannot download its own browser there)."""

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def sync_playwright_or_skip(chromium: Path = CHROMIUM):
    """Playwright's sync API, or a skip (a failure under CI, which installs Chromium)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        missing = f"playwright is not installed ({exc})"
    else:
        if chromium.exists():
            return sync_playwright
        missing = f"no browser at {chromium} (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test: {missing}")
    pytest.skip(missing)


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
