"""The LLM teacher against a real OpenAI-compatible server: `transformers serve` on 127.0.0.1.

The server (part of transformers, its dependencies already in the lab's stack) serves the embedded
SmolLM2-135M-Instruct from a folder made by ``write_serving_folder``: the lab's chat template with
tools, and a response template that returns tool calls as structured ``tool_calls``. A 135M model
rarely solves real tasks, so most tasks here are easy on purpose ("copy this line"), and the
assertions are about mechanics: what is kept, what is recorded, what survives a kill, what never
leaks. Greedy decoding (temperature 0) keeps the model's replies stable.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from localhost import free_port

from labkit.data import append_rows, load_dataset_dir, read_rows, trajectory_row
from labkit.env import Answer, EnvConfig, Invalid, ToolCall, ToolEnv, run_episode
from labkit.tasks import Task, save_tasks
from labkit.teach import llm_log_dir
from labkit.teachers.llm import (
    ATTEMPTED_FILE,
    ROWS_FILE,
    LLMConfigError,
    LLMRequestError,
    LLMServerError,
    LLMTeacher,
    LLMTeacherConfig,
    OutputBusyError,
    _exclusive,
    attempted_ids,
    generate_llm_trajectories,
    write_serving_folder,
)
from labkit.tools import load_catalog

FIXTURES = Path(__file__).parent / "fixtures"
USER_TOOLS = FIXTURES / "user_tools.py"
FAKE_KEY = "sk-labkit-FAKE-9f2c71e4b0d3a8"  # distinctive: a local server ignores it
SERVER_START_TIMEOUT_S = 120
ENV = EnvConfig(max_turns=2, max_tokens=1024)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _offline_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_UPDATE_CHECK="1", **extra)
    for name in ("OPENAI_API_KEY", "LABKIT_LLM_API_KEY", "OPENAI_BASE_URL", "LABKIT_LLM_BASE_URL", "LABKIT_LLM_MODEL"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`transformers serve FOLDER` on a free 127.0.0.1 port; yields (base_url, model); always stopped."""
    from labkit.models import ModelNotAvailableError, embedded_model_dir

    try:
        model_dir = embedded_model_dir()
    except ModelNotAvailableError as exc:
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("llm_server")
    folder = write_serving_folder(model_dir, root / "smollm2", parse_tool_calls=True)  # structured tool_calls
    port = free_port()
    log_path = root / "server.log"
    command = [
        sys.executable,
        "-c",
        "from transformers.cli.transformers import app; app()",
        "serve",
        str(folder),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
    ]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=_offline_env(), start_new_session=True
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"transformers serve exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"transformers serve not ready after {SERVER_START_TIMEOUT_S} s:\n"
                    f"{log_path.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1", str(folder)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def tide_catalog():
    return load_catalog([USER_TOOLS], builtin=False)


def _config(server, **options) -> LLMTeacherConfig:
    base_url, model = server
    settings = dict(temperature=0.0, max_tokens=40, max_retries=1, timeout_s=60, seed=0)
    settings.update(options)
    return LLMTeacherConfig(base_url, model, FAKE_KEY, **settings)


def _copy_task(task_id: str, text: str) -> Task:
    return Task(id=task_id, query=f"Copy this line exactly: <answer>{text}</answer>", tools=["high_tide"], answer=text)


TOOL_TASK = Task(
    id="tide-call",
    query='Copy this line exactly: <tool_call>{"name": "high_tide", "arguments": {"port": "Brest"}}</tool_call>',
    tools=["high_tide", "tidal_range"],
    answer=6.1,
    check="number",
)


def _assert_intact_rows(rows: list[dict], successes: set[str]) -> None:
    for row in rows:
        assert row["success"] is True
        assert row["task_id"] in successes
        assert row["policy"].startswith("teacher:llm:")
        assert [m["role"] for m in row["messages"][:2]] == ["system", "user"]
        assert row["messages"][-1]["role"] == "assistant" and "<answer>" in row["messages"][-1]["content"]
        assert json.loads(row["tools"])


# ----------------------------------------------------------------------------- no server needed


def test_config_from_env_and_the_key_stays_out_of_repr():
    environ = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "LABKIT_LLM_MODEL": "m", "OPENAI_API_KEY": FAKE_KEY}
    config = LLMTeacherConfig.from_env(environ=environ)
    assert (config.base_url, config.model, config.api_key) == ("http://127.0.0.1:9/v1", "m", FAKE_KEY)
    assert FAKE_KEY not in repr(config) and FAKE_KEY not in str(config)
    assert FAKE_KEY not in repr(LLMTeacher(config))
    # flags win over the environment; LABKIT_* over OPENAI_*; a local server needs no key
    environ["LABKIT_LLM_BASE_URL"] = "http://127.0.0.1:8/v1"
    assert LLMTeacherConfig.from_env(environ=environ).base_url == "http://127.0.0.1:8/v1"
    assert LLMTeacherConfig.from_env("http://h:1/v1", "other", environ=environ).model == "other"
    assert LLMTeacherConfig.from_env(environ={"LABKIT_LLM_MODEL": "m"}).api_key == "local"
    with pytest.raises(LLMConfigError, match="LABKIT_LLM_MODEL"):
        LLMTeacherConfig.from_env(environ={})
    with pytest.raises(LLMConfigError, match="http"):
        LLMTeacherConfig("localhost:8000", "m")
    with pytest.raises(ValueError, match="max_tokens"):
        LLMTeacherConfig("http://127.0.0.1:9/v1", "m", max_tokens=0)


def test_unreachable_server_is_a_typed_error_and_nothing_is_marked(tmp_path, tide_catalog, caplog):
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    config = LLMTeacherConfig(dead, "m", FAKE_KEY, max_retries=1, timeout_s=2)
    teacher = LLMTeacher(config)
    teacher.reset(_copy_task("t", "4"), [])
    with pytest.raises(LLMServerError, match="cannot reach") as raised:
        teacher.act(None)
    assert dead in str(raised.value) and FAKE_KEY not in str(raised.value)

    tasks = [_copy_task(f"t{i}", str(i)) for i in range(5)]
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(LLMServerError, match="2 tasks in a row") as raised:
        generate_llm_trajectories(
            tasks, tmp_path, config, progress=False, catalog=tide_catalog, max_consecutive_errors=2
        )
    assert time.monotonic() - started < 30
    assert "rerun the same command to resume" in str(raised.value)
    assert attempted_ids(tmp_path) == set()  # a rerun retries every one of them
    assert not list(read_rows(tmp_path / ROWS_FILE))
    assert "t0: cannot reach" in caplog.text and "not marked attempted" in caplog.text
    assert FAKE_KEY not in caplog.text and FAKE_KEY not in str(raised.value)


def test_the_llm_logs_refuse_another_model(tmp_path):
    from labkit.runs import RunFolderError
    from labkit.teach import TeachConfig, teach

    config = TeachConfig(
        teacher="llm",
        tools_modules=[str(USER_TOOLS)],
        tasks_file=str(FIXTURES / "user_tasks.jsonl"),
        out=str(tmp_path / "llm"),
    )
    dead = f"http://127.0.0.1:{free_port()}/v1"
    teach(
        config, progress=False, llm=LLMTeacherConfig(dead, "m", FAKE_KEY, max_retries=0, timeout_s=2)
    )  # two tasks, none reached
    with pytest.raises(RunFolderError, match="model: 'm' there, 'other' now"):
        teach(config, progress=False, llm=LLMTeacherConfig(dead, "other", FAKE_KEY, max_retries=0, timeout_s=2))


class _Answers:
    """A scripted policy that answers at once (only to make a real row for the bookkeeping test)."""

    def reset(self, task, docs):
        self.task = task

    def act(self, observation):
        return Answer(str(self.task.answer))


def test_resume_completes_a_row_whose_attempted_line_was_lost(tmp_path, tide_catalog):
    """A kill between the row and its attempted line, and a torn line: nothing duplicated, nothing lost."""
    task = _copy_task("kept", "4")
    env = ToolEnv(tide_catalog, ENV)
    trajectory = run_episode(env, _Answers(), task)
    env.close()
    assert trajectory.success
    append_rows(tmp_path / ROWS_FILE, [trajectory_row(trajectory, policy="teacher:llm:m")])
    (tmp_path / ATTEMPTED_FILE).write_text('{"task_id": "kept", "succ')  # torn by a kill mid-write
    dead = LLMTeacherConfig(f"http://127.0.0.1:{free_port()}/v1", "m", max_retries=0, timeout_s=2)
    generate_llm_trajectories(
        [task, task], tmp_path, dead, progress=False, catalog=tide_catalog
    )  # no request is needed
    attempted = list(read_rows(tmp_path / ATTEMPTED_FILE))
    assert [r["task_id"] for r in attempted] == ["kept"] and attempted[0]["success"] is True
    assert [r["task_id"] for r in read_rows(tmp_path / ROWS_FILE)] == ["kept"]


def _reply(content=None, tool_calls=None, usage=True):
    from openai.types.chat import ChatCompletion

    message = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = [{"id": f"id{i}", "type": "function", "function": f} for i, f in enumerate(tool_calls)]
    body = {
        "id": "r",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6}
    return ChatCompletion.model_validate(body)


def test_odd_replies_become_actions_never_exceptions():
    """Replies as the official client parses them: whatever the model wrote, the teacher returns an action."""
    teacher = LLMTeacher(LLMTeacherConfig("http://127.0.0.1:9/v1", "m"))
    teacher.reset(_copy_task("t", "4"), [])
    cases = [
        (
            _reply("<trial>what does it take?</trial>", [{"name": "high_tide", "arguments": '{"port": "Brest"}'}]),
            ToolCall,
        ),
        (_reply(None, [{"name": "high_tide", "arguments": "{not json"}]), ToolCall),  # the env reports the arguments
        (_reply('<execute>x</execute>\n<tool_call>\n{"name": "high_tide", "arguments": {}}\n</tool_call>'), ToolCall),
        (_reply("<answer> 4 </answer>", usage=False), Answer),
        (_reply("The answer is 4."), Invalid),
        (_reply(None), Invalid),
        (_reply("<tool_call>{broken</tool_call>"), Invalid),
        (_reply("", [{"name": "", "arguments": "{}"}]), Invalid),
        (
            _reply(
                "<execute>x</execute><tool_call>{broken</tool_call>",
                [{"name": "a", "arguments": "{}"}, {"name": "b", "arguments": "{}"}],
            ),
            ToolCall,
        ),
    ]
    for response, kind in cases:
        action, assistant, call_id = teacher._read(response)
        assert isinstance(action, kind), (response.choices[0].message, action)
        assert assistant["role"] == "assistant"
        if kind is ToolCall:
            assert len(assistant["tool_calls"]) == 1 and assistant["tool_calls"][0]["id"] == call_id
            json.loads(assistant["tool_calls"][0]["function"]["arguments"])  # always valid JSON going back
    assert teacher.problems[-1] == ["several_calls"]  # format slips are counted per turn
    first = teacher._read(cases[0][0])[0]
    assert (first.phase, first.thought, first.arguments, first.n_tokens) == (
        "trial",
        "what does it take?",
        {"port": "Brest"},
        5,
    )
    assert teacher._read(cases[3][0])[0].text == "4"
    started = time.perf_counter()  # a 2 MB reply was still being parsed after 300 s
    runaway = teacher._read(_reply("<trial>a</trial>" * 131_072, [{"name": "high_tide", "arguments": "{}"}]))[0]
    assert isinstance(runaway, Invalid) and "characters long" in runaway.error and time.perf_counter() - started < 1


@pytest.mark.parametrize(
    "body, says",
    [
        (b'{"id": "x", "choices": [{"mess', "sent a body that is not JSON"),
        (b'\xff\xfe{"choices": []}', "sent a body that is not JSON"),
        (b'{"choices": 5}', "sent a reply with no choices"),
    ],
)
def test_a_broken_body_from_the_server_is_a_typed_error(body, says):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        teacher = LLMTeacher(
            LLMTeacherConfig(f"http://127.0.0.1:{server.server_port}/v1", "m", FAKE_KEY, max_retries=0, timeout_s=5)
        )
        teacher.reset(_copy_task("a", "x"), [])
        with pytest.raises(LLMServerError, match=says):
            teacher.act(None)
    finally:
        server.shutdown()
        server.server_close()


def test_two_runs_cannot_write_one_folder(tmp_path):
    with _exclusive(tmp_path):
        with pytest.raises(OutputBusyError, match="another LLM teacher run"):
            with _exclusive(tmp_path):
                pass
    with _exclusive(tmp_path):  # released again
        pass


# ----------------------------------------------------------------------------- against the real server


@pytest.mark.slow
def test_structured_tool_calls_round_trip(server, tide_catalog):
    """The server returns a structured tool call; the tool result goes back with its id; the next turn works."""
    teacher = LLMTeacher(_config(server))
    env = ToolEnv(tide_catalog, ENV)
    try:
        toolset = env.reset(TOOL_TASK)
        teacher.reset(TOOL_TASK, toolset.docs)
        action = teacher.act(None)
        assert isinstance(action, ToolCall), action
        assert (action.name, action.arguments) == ("high_tide", {"port": "Brest"})
        assert isinstance(action.n_tokens, int) and action.n_tokens > 0  # the server's usage, not an estimate
        sent = teacher.messages[-1]
        call_id = sent["tool_calls"][0]["id"]
        assert call_id != "call_0"  # the server's own id: it came back as message.tool_calls, not as text
        assert json.loads(sent["tool_calls"][0]["function"]["arguments"]) == {"port": "Brest"}
        result = env.step(action)
        assert result.observation.ok and result.observation.content == "6.1"
        follow_up = teacher.act(result.observation)  # the server accepted the tool message with that id
        assert teacher.messages[-2] == {"role": "tool", "tool_call_id": call_id, "content": "6.1"}
        assert isinstance(follow_up, (ToolCall, Answer)) or follow_up.error
    finally:
        env.close()
        teacher.close()


@pytest.mark.slow
def test_plain_text_reply_is_an_invalid_action(server):
    teacher = LLMTeacher(_config(server, max_tokens=8))
    try:
        teacher.reset(Task(id="hi", query="Say hello to me.", tools=["high_tide"], answer="hello"), [])
        action = teacher.act(None)
        assert isinstance(action, Invalid) and "no <tool_call> and no <answer>" in action.error, action
    finally:
        teacher.close()


@pytest.mark.slow
def test_generation_keeps_only_successes_and_records_every_attempt(server, tide_catalog, tmp_path):
    tasks = [_copy_task("copy-4", "4"), _copy_task("copy-paris", "Paris"), TOOL_TASK, _copy_task("copy-4", "4")]
    out = generate_llm_trajectories(tasks, tmp_path / "run", _config(server), ENV, progress=False, catalog=tide_catalog)
    assert out == tmp_path / "run"
    attempted = list(read_rows(out / ATTEMPTED_FILE))
    assert sorted(r["task_id"] for r in attempted) == ["copy-4", "copy-paris", "tide-call"]  # the duplicate ran once
    successes = {r["task_id"] for r in attempted if r["success"]}
    rows = list(read_rows(out / ROWS_FILE))
    assert {row["task_id"] for row in rows} == successes and len(rows) == len(successes)
    assert successes, f"the model solved none of the copy tasks: {attempted}"
    _assert_intact_rows(rows, successes)
    tide = next(r for r in attempted if r["task_id"] == "tide-call")
    assert tide["calls"] >= 1  # its tool calls ran in the environment

    # A second run with the same folder has nothing left to do and changes nothing.
    before = ((out / ROWS_FILE).read_bytes(), (out / ATTEMPTED_FILE).read_bytes())
    generate_llm_trajectories(tasks, out, _config(server), ENV, progress=False, catalog=tide_catalog)
    assert ((out / ROWS_FILE).read_bytes(), (out / ATTEMPTED_FILE).read_bytes()) == before


@pytest.mark.slow
def test_wrong_model_is_refused_with_a_clear_error(server, tide_catalog, tmp_path):
    base_url, _ = server
    config = LLMTeacherConfig(base_url, "no-such-model", FAKE_KEY, max_retries=1, timeout_s=30)
    with pytest.raises(LLMRequestError, match="HTTP 400") as raised:
        generate_llm_trajectories([_copy_task("x", "4")], tmp_path, config, ENV, progress=False, catalog=tide_catalog)
    assert "no-such-model" in str(raised.value) and FAKE_KEY not in str(raised.value)
    assert attempted_ids(tmp_path) == set()


@pytest.mark.slow
def test_api_key_never_reaches_rows_files_logs_or_output(server, tide_catalog, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)  # every logger, HTTP clients included
    tasks = [_copy_task("key-1", "7"), _copy_task("key-2", "Oslo")]
    out = generate_llm_trajectories(tasks, tmp_path, _config(server), ENV, progress=True, catalog=tide_catalog)
    captured = capfd.readouterr()
    # the logs saw the traffic at debug level: the client's request options, messages included
    assert any(r.name.startswith("openai") and r.levelno == logging.DEBUG for r in caplog.records)
    assert "chat/completions" in caplog.text
    assert "llm teacher" in captured.err  # the progress bar
    for name, text in {
        "rows": (out / ROWS_FILE).read_text() if (out / ROWS_FILE).exists() else "",
        "attempted": (out / ATTEMPTED_FILE).read_text(),
        "logs": caplog.text,
        "stdout": captured.out,
        "stderr": captured.err,
    }.items():
        assert FAKE_KEY not in text, f"the API key leaked into {name}"
    assert len(list(read_rows(out / ATTEMPTED_FILE))) == 2


@pytest.mark.slow
def test_killed_run_resumes_without_duplicates_or_losses(server, tmp_path):
    base_url, model = server
    tasks = [
        _copy_task(f"resume-{i}", word) for i, word in enumerate(["4", "Paris", "7", "blue", "Oslo", "12", "tea", "9"])
    ]
    tasks_file = save_tasks(tasks, tmp_path / "tasks.jsonl")
    dataset = tmp_path / "out"
    out = llm_log_dir(dataset)
    command = [
        sys.executable,
        "-m",
        "labkit.cli",
        "teach",
        "--teacher",
        "llm",
        "--tasks",
        str(tasks_file),
        "--out",
        str(dataset),
        "--tools-module",
        str(USER_TOOLS),
        "--base-url",
        base_url,
        "--model",
        model,
        "--temperature",
        "0",
        "--seed",
        "0",
        "--max-tokens",
        "24",
        "--max-turns",
        "2",
        "--max-retries",
        "1",
        "--verbose",
    ]
    env = _offline_env(OPENAI_API_KEY=FAKE_KEY)
    outputs = []

    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        while len(attempted_ids(out)) < 2:
            assert first.poll() is None, f"the run ended before it could be killed: {first.communicate()}"
            assert time.monotonic() < deadline, "no task was attempted within 120 s"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
    finally:
        if first.poll() is None:
            first.kill()
        outputs.append(first.communicate(timeout=30))
    done_before = attempted_ids(out)
    assert 2 <= len(done_before) < len(tasks), "the kill must land midway"

    second = subprocess.run(command, capture_output=True, env=env, timeout=300)
    outputs.append((second.stdout, second.stderr))
    assert second.returncode == 0, second.stderr.decode(errors="replace")[-3000:]

    attempted = list(read_rows(out / ATTEMPTED_FILE))
    counts = Counter(r["task_id"] for r in attempted)
    assert counts == Counter(t.id for t in tasks), counts  # every task attempted exactly once
    rows = list(read_rows(out / ROWS_FILE))
    kept = Counter(row["task_id"] for row in rows)
    assert all(n == 1 for n in kept.values()), kept  # no duplicate rows
    successes = {r["task_id"] for r in attempted if r["success"]}
    assert set(kept) == successes  # no success lost
    _assert_intact_rows(rows, successes)
    for line in (out / ROWS_FILE).read_bytes().splitlines():  # every line whole
        json.loads(line)
    assert sorted(load_dataset_dir(dataset)["task_id"]) == sorted(successes), "the dataset holds every kept row"
    for stdout, stderr in outputs:
        assert FAKE_KEY.encode() not in stdout + stderr
    assert b"chat/completions" in outputs[-1][1]  # --verbose really logged the HTTP traffic
