"""The episode loop every policy runs in: teachers, evaluation and RL.

``reset(task)`` builds the episode's tools (evolved per the task's level and
seed) and returns what the agent is shown; ``step(action)`` runs one action and
returns an observation. Nothing an agent sends can crash it: unknown tools, bad
arguments, tools that raise, hang or flood all come back as typed error
observations, and budgets on turns, calls and tokens end runaway episodes.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import json
import math
import os
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Union

from labkit.evolve import TRAIN_OPERATORS, evolve_toolset
from labkit.tasks import Task, check_answer
from labkit.tools.registry import Catalog, load_catalog
from labkit.toolset import ErrorKind, LiveTool, ToolCallError, ToolSet, base_toolset

PHASES = ("trial", "execution")


@dataclass
class EnvConfig:
    # A three-hop task at level 4 takes a careful agent about 13 turns; these leave room for one slip per tool.
    max_turns: int = 20
    max_calls: int = 16
    max_tokens: int = 2048
    timeout_s: float = 2.0
    max_observation_chars: int = 1500


# ----------------------------------------------------------------------------- actions


@dataclass
class ToolCall:
    """Call a tool. ``phase`` is what the agent declared: a trial or part of the execution."""

    name: str
    arguments: Any = None
    phase: str = "execution"
    thought: str = ""
    n_tokens: int | None = None
    slip: bool = (
        False  # a teacher's deliberate mistake: the learner reads it as context but is never trained to write it
    )


@dataclass
class Answer:
    text: str
    thought: str = ""
    n_tokens: int | None = None


@dataclass
class Invalid:
    """Model output that parsed to no usable action; it still costs a turn."""

    raw: str
    error: str
    n_tokens: int | None = None


Action = Union[ToolCall, Answer, Invalid]


@dataclass
class Observation:
    content: str
    ok: bool
    error: ErrorKind | None = None
    truncated: bool = False


@dataclass
class Step:
    """One turn of a trajectory: what the agent did, in which phase, and what came back."""

    phase: str
    action: Action
    observation: Observation | None
    tokens: int


@dataclass
class Trajectory:
    task: Task
    toolset: ToolSet
    steps: list[Step] = field(default_factory=list)
    answer: str | None = None
    success: bool = False
    done: bool = False
    end_reason: str = ""

    @property
    def n_calls(self) -> int:
        return sum(isinstance(s.action, ToolCall) for s in self.steps)

    @property
    def n_tokens(self) -> int:
        return sum(s.tokens for s in self.steps)


@dataclass
class StepResult:
    observation: Observation | None
    done: bool
    reward: float


# ----------------------------------------------------------------------------- text that can be saved

# The lab's own secrets: a tool runs with the user's privileges and could read them, so observations never carry them.
SECRET_VARIABLES = ("LABKIT_LLM_API_KEY", "OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "WANDB_API_KEY")


def valid_text(text: str) -> str:
    """``text`` with lone surrogates (a JSON escape like "\\ud83d" decodes to one) as U+FFFD.

    Nothing downstream can encode them (UTF-8 files, Arrow, tokenizers), so they are replaced where text
    enters an episode: the agent's actions in ``ToolEnv.step`` and the tools' observations.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def plain_text(value: Any) -> str:
    """Any value as valid text; one whose ``str`` raises (or is a 100,000-digit int) is named by its type."""
    try:
        return valid_text(value if isinstance(value, str) else str(value))
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def plain_json(value: Any) -> Any:
    """A JSON value (what a trajectory can store) equal to ``value``, or ``value``'s text when it has none."""
    try:
        return json.loads(valid_text(json.dumps(value, ensure_ascii=False, default=_jsonable)))
    except Exception:  # a 100,000-digit int, deep nesting, a member whose repr raises
        return plain_text(value)


def clean_action(action: Any) -> Action:
    """The action as a trajectory records it: plain, saveable text and JSON values, whatever a policy sent."""
    if isinstance(action, ToolCall):
        arguments = valid_text(action.arguments) if isinstance(action.arguments, str) else plain_json(action.arguments)
        name = None if action.name is None else plain_text(action.name)
        return ToolCall(
            name, arguments, plain_text(action.phase), plain_text(action.thought), action.n_tokens, action.slip is True
        )
    if isinstance(action, Answer):
        return Answer(plain_text(action.text), plain_text(action.thought), action.n_tokens)
    error = getattr(action, "error", "unreadable action")
    return Invalid(plain_text(getattr(action, "raw", action)), plain_text(error), getattr(action, "n_tokens", None))


# ----------------------------------------------------------------------------- tool execution


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value, key=repr) if isinstance(value, (set, frozenset)) else list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return repr(value)


def cut(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters with a note saying how many were left out, and whether it was cut."""
    if len(text) <= limit:
        return text, False
    return text[:limit] + f"... [truncated {len(text) - limit} characters]", True


def serialize(value: Any, limit: int) -> tuple[str, bool]:
    """Tool output as JSON text of at most ``limit`` characters, and whether it was cut. Never raises."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=_jsonable, allow_nan=False)
    except Exception:  # NaN, a cycle, deep nesting, a huge int, a raising __repr__
        text = json.dumps(plain_text(value)[: limit + 1], ensure_ascii=False)
    return cut(valid_text(text), limit)


def error_observation(kind: ErrorKind, message: str, limit: int = EnvConfig.max_observation_chars) -> Observation:
    """A typed error, its message cut like tool output (a tool's error can quote a megabyte of arguments)."""
    message, _ = cut(plain_text(message), limit)
    content = json.dumps({"error": {"type": kind.value, "message": message}}, ensure_ascii=False)
    return Observation(content=content, ok=False, error=kind)


def redact(observation: Observation, secrets: tuple[str, ...]) -> Observation:
    """``observation`` with each secret (and the values of ``SECRET_VARIABLES``) as ***."""
    for secret in (*secrets, *(os.environ.get(name, "") for name in SECRET_VARIABLES)):
        # Shorter ones are no secrets (a local server's key is "local").
        if len(secret) >= 8 and secret in observation.content:
            observation.content = observation.content.replace(secret, "***")
    return observation


def run_tool(tool: LiveTool, call: ToolCall, limit: int) -> Observation:
    """One call, its result serialized, as an observation; runs on the tool's worker thread, so within the timeout."""
    try:
        content, truncated = serialize(tool.call(call.arguments), limit)
        return Observation(content, ok=True, truncated=truncated)
    except ToolCallError as exc:
        return error_observation(exc.kind, exc.message, limit)
    except (ValueError, KeyError, LookupError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        return error_observation(ErrorKind.INVALID_VALUE, f"{call.name}: {plain_text(message)}", limit)
    except BaseException as exc:  # noqa: BLE001
        # A tool bug must not end the episode, nor may a tool's sys.exit(), GeneratorExit or KeyboardInterrupt:
        # raised here they are the tool's own. The user's Ctrl-C
        # arrives on the main thread, which waits in ToolRunner.run.
        return error_observation(
            ErrorKind.TOOL_EXCEPTION, f"{call.name} failed: {type(exc).__name__}: {plain_text(exc)[:200]}", limit
        )


class _Stop(BaseException):
    """Raised in a timed-out tool's thread to end it."""


def _serve(jobs: queue.SimpleQueue) -> None:
    try:
        while (job := jobs.get()) is not None:
            fn, future = job
            future.set_result(fn())
    except _Stop:
        pass


class ToolRunner:
    """Runs tool calls on a daemon worker thread so a hanging tool costs at most ``timeout_s``.

    Python cannot kill a thread. A timed-out call's worker is handed ``_Stop`` (a busy tool stops at its
    next bytecode; one blocked in a C call such as ``time.sleep`` stops when the call returns) and told to
    exit, and a fresh worker takes over. Daemon workers never hold up interpreter exit.
    """

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._jobs: queue.SimpleQueue | None = None
        self._worker: threading.Thread | None = None

    def run(self, fn: Callable[[], Observation]) -> Observation:
        if self._jobs is None:
            self._jobs = queue.SimpleQueue()
            self._worker = threading.Thread(target=_serve, args=(self._jobs,), daemon=True, name="labkit-tool")
            self._worker.start()
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((fn, future))
        try:
            return future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            worker = self._worker
            self.close()
            if worker.is_alive():
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(_Stop))
            return error_observation(ErrorKind.TIMEOUT, f"the tool did not answer within {self.timeout_s:g} s")

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = self._worker = None


def execute(
    toolset: ToolSet, call: ToolCall, runner: ToolRunner, limit: int, secrets: tuple[str, ...] = ()
) -> Observation:
    tool = toolset.tools.get(call.name) if isinstance(call.name, str) else None
    if tool is None:
        offered = ", ".join(d["function"]["name"] for d in toolset.docs)
        return error_observation(
            ErrorKind.UNKNOWN_TOOL, f"no tool named {plain_text(call.name)[:80]!r}. Available tools: {offered}.", limit
        )
    return redact(runner.run(lambda: run_tool(tool, call, limit)), secrets)


# ----------------------------------------------------------------------------- the environment


def build_toolset(catalog: Catalog, task: Task) -> ToolSet:
    """The episode's tools: documented ones, with the called tools evolved to the task's level."""
    toolset = base_toolset(catalog, task.tools)
    if task.level == 0:
        return toolset
    operators = TRAIN_OPERATORS if task.split == "train" else None
    return evolve_toolset(toolset, task.called_tools, task.level, task.evolve_seed, operators)


def approx_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


class ToolEnv:
    """One episode at a time: ``reset(task)``, then ``step(action)`` until ``done``."""

    def __init__(self, catalog: Catalog | None = None, config: EnvConfig | None = None, secrets: tuple[str, ...] = ()):
        self.catalog = catalog or load_catalog()
        self.config = config or EnvConfig()
        self.secrets = secrets  # besides SECRET_VARIABLES': e.g. an API key given in code
        self.runner = ToolRunner(self.config.timeout_s)
        self.trajectory: Trajectory | None = None

    def reset(self, task: Task) -> ToolSet:
        """Start an episode; returns the toolset, whose ``docs`` are what the agent sees."""
        self.trajectory = Trajectory(task=task, toolset=build_toolset(self.catalog, task))
        return self.trajectory.toolset

    def step(self, action: Action) -> StepResult:
        traj = self.trajectory
        if traj is None:
            raise RuntimeError("call reset(task) before step(action)")
        if traj.done:
            raise RuntimeError(f"the episode is over ({traj.end_reason}); call reset(task) for a new one")
        action = clean_action(action)
        tokens = getattr(action, "n_tokens", None)
        if not isinstance(tokens, int) or tokens < 0:
            tokens = approx_tokens(_action_text(action))
        if isinstance(action, Answer):
            traj.steps.append(Step("answer", action, None, tokens))
            traj.answer = action.text
            traj.success = check_answer(traj.task, traj.answer)
            return self._finish("answered")
        if isinstance(action, ToolCall):
            phase = action.phase if action.phase in PHASES else "execution"
            if traj.n_calls >= self.config.max_calls:
                observation = error_observation(
                    ErrorKind.BUDGET_EXHAUSTED, f"call budget of {self.config.max_calls} is spent"
                )
            else:
                observation = execute(
                    traj.toolset, action, self.runner, self.config.max_observation_chars, self.secrets
                )
        else:
            phase = "invalid"
            observation = error_observation(ErrorKind.BAD_FORMAT, action.error[:300])
        traj.steps.append(Step(phase, action, observation, tokens))
        if observation.error is ErrorKind.BUDGET_EXHAUSTED:
            return self._finish("budget_calls", observation)
        if len(traj.steps) >= self.config.max_turns:
            return self._finish("budget_turns", observation)
        if traj.n_tokens >= self.config.max_tokens:
            return self._finish("budget_tokens", observation)
        return StepResult(observation, done=False, reward=0.0)

    def _finish(self, reason: str, observation: Observation | None = None) -> StepResult:
        traj = self.trajectory
        traj.done, traj.end_reason = True, reason
        return StepResult(observation, done=True, reward=float(traj.success))

    def close(self) -> None:
        self.runner.close()


def _action_text(action: Action) -> str:
    if isinstance(action, ToolCall):
        return f"{action.thought}{action.name}{plain_text(action.arguments)}"
    if isinstance(action, Answer):
        return f"{action.thought}{action.text}"
    return action.raw


def call_once(toolset: ToolSet, name: str, arguments: Any, config: EnvConfig | None = None) -> Observation:
    """One call outside any episode, exactly as an episode would run it (for playgrounds and the CLI)."""
    config = config or EnvConfig()
    runner = ToolRunner(config.timeout_s)
    try:
        return execute(toolset, ToolCall(name, arguments), runner, config.max_observation_chars)
    finally:
        runner.close()


class Policy(Protocol):
    """Anything that acts in an episode: a scripted teacher, a model, an API endpoint."""

    def reset(self, task: Task, docs: list[dict]) -> None:
        """A new episode: the task and the documentation the agent is shown."""

    def act(self, observation: Observation | None) -> Action:
        """The next action, given what the last one returned (``None`` on the first turn)."""


def run_episode(env: ToolEnv, policy: Policy, task: Task) -> Trajectory:
    """The one episode loop that teachers, evaluation and RL share."""
    toolset = env.reset(task)
    policy.reset(task, toolset.docs)
    observation = None
    while True:
        result = env.step(policy.act(observation))
        if result.done:
            return env.trajectory
        observation = result.observation
