"""The LLM teacher: an OpenAI-compatible endpoint drives the same episode loop as every other policy.

Any server that speaks ``/v1/chat/completions`` works: OpenAI, vLLM, llama.cpp,
Ollama, or ``transformers serve``. The teacher sends the conversation so far
(the lab's system prompt, the task, earlier turns and tool results) with the
episode's tool docs as ``tools=``, and turns each reply into an action:

- structured ``message.tool_calls`` (what vLLM, OpenAI and ``transformers
  serve`` return), with the phase (``<trial>``/``<execute>``) and any
  ``<answer>`` read from ``message.content``;
- or a ``<tool_call>`` written into the content as text (llama.cpp without
  ``--jinja``, or a server without a tool parser), read by
  :func:`labkit.protocol.parse_turn`.

Anything else becomes an ``Invalid`` action: odd model output never raises.

Configuration comes from arguments or the environment
(:meth:`LLMTeacherConfig.from_env`): ``LABKIT_LLM_BASE_URL`` or
``OPENAI_BASE_URL``, ``LABKIT_LLM_MODEL``, and ``LABKIT_LLM_API_KEY`` or
``OPENAI_API_KEY`` (a local server ignores the key; it defaults to ``"local"``).
The key is never logged, printed, shown in a repr, or written to any file.

Retries are the official client's own: ``max_retries`` attempts with
exponential backoff on connection errors, timeouts, 408, 409, 429 and 5xx. What survives
them becomes a typed error: :class:`LLMServerError` (the server failed) or
:class:`LLMRequestError` (the server refused the request: fix the settings).

:func:`generate_llm_trajectories` runs tasks and keeps the successful
trajectories. It resumes: kill it, rerun it, and it neither duplicates nor
loses a task (see its docstring).

Serving the lab's own model with ``transformers serve``: the server renders
prompts with the tokenizer's chat template and parses replies with its
``response_template``. :func:`write_serving_folder` writes a folder with the
lab's chat template, and either no response template (the raw text comes back)
or :data:`SERVE_RESPONSE_TEMPLATE`, which returns tool calls as structured
``tool_calls`` and keeps the phase and answer tags in ``content``. (Serving with
the lab's own :data:`labkit.protocol.RESPONSE_TEMPLATE` as the tokenizer's
response template would make the server drop the phase and the answer.)::

    python -c "from labkit.models import embedded_model_dir; from labkit.teachers.llm import write_serving_folder; \\
        write_serving_folder(embedded_model_dir(), 'runs/serve/smollm2')"
    HF_HUB_OFFLINE=1 HF_HUB_DISABLE_UPDATE_CHECK=1 \\
        transformers serve runs/serve/smollm2 --host 127.0.0.1 --port 8000 --device cpu
    LABKIT_LLM_MODEL=runs/serve/smollm2 labkit teach --teacher llm --tasks tasks.jsonl --out runs/llm-teacher
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import urlsplit, urlunsplit

import openai
from tqdm.auto import tqdm
from transformers.utils.chat_parsing import parse_response

from labkit.data import append_rows, read_rows, trajectory_row
from labkit.env import Action, Answer, EnvConfig, Invalid, Observation, ToolCall, ToolEnv, run_episode
from labkit.protocol import CHAT_TEMPLATE, MAX_TURN_CHARS, RESPONSE_TEMPLATE, SYSTEM_PROMPT, message_action, parse_turn
from labkit.tasks import Task

log = logging.getLogger("labkit.teachers.llm")  # the same name under `python -m`

ROWS_FILE = "llm_rows.jsonl"
ATTEMPTED_FILE = "attempted.jsonl"
LOCK_FILE = ".llm_teacher.lock"
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"  # vLLM's and `transformers serve`'s default port
LOCAL_API_KEY = "local"  # local servers ignore the key, but the client needs one
RETRYABLE_STATUS = (408, 409, 429)  # with 5xx: what the official client itself retries

_TEXT_CALL = re.compile(r"<tool_call>.*?(?:</tool_call>|$)", re.S)

# For `transformers serve`: tool calls come back structured; everything else, the <trial>/<execute>
# and <answer> tags included, stays in `content`, where the teacher reads the phase and the answer.
SERVE_RESPONSE_TEMPLATE = {
    "version": 1,
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "tool_calls": {
            "open_pattern": r"\s*<tool_call>",
            "close": "</tool_call>",
            "content": "json",
            "repeats": True,
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {"close_pattern": r"\s*<\|im_end\|>"},
    },
}


# ----------------------------------------------------------------------------- errors


class LLMTeacherError(RuntimeError):
    """Base class of the LLM teacher's errors. Messages never contain the API key."""


class LLMConfigError(LLMTeacherError, ValueError):
    """Settings that cannot work: no model, a malformed URL, a negative budget."""


class LLMServerError(LLMTeacherError):
    """The endpoint failed after the client's retries: unreachable, timed out, 408, 409, 429 or 5xx."""


class LLMRequestError(LLMTeacherError):
    """The endpoint refused the request (any other 4xx): wrong key, model or parameter."""


class OutputBusyError(LLMTeacherError):
    """Another generation is writing to the same folder."""


# ----------------------------------------------------------------------------- configuration


@dataclass
class LLMTeacherConfig:
    """Where the model is and how to ask it. ``api_key`` is kept out of ``repr`` (and so out of logs)."""

    base_url: str
    model: str
    api_key: str = field(default=LOCAL_API_KEY, repr=False)
    max_retries: int = 4
    timeout_s: float = 60.0
    temperature: float = 0.2
    max_tokens: int = 256
    seed: int | None = None  # sent when set; servers that support it then sample reproducibly

    def __post_init__(self) -> None:
        if (
            not isinstance(self.base_url, str)
            or urlsplit(self.base_url).scheme not in ("http", "https")
            or not urlsplit(self.base_url).netloc
        ):
            raise LLMConfigError(
                f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL}, got {display_url(str(self.base_url))!r}"
            )
        if not isinstance(self.model, str) or not self.model.strip():
            raise LLMConfigError(
                "no model named: pass --model or set LABKIT_LLM_MODEL "
                "(for `transformers serve FOLDER`, the folder as given)"
            )
        if not isinstance(self.api_key, str) or not self.api_key:
            raise LLMConfigError("api_key must be a non-empty string; local servers accept any, e.g. 'local'")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise LLMConfigError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        if not self.timeout_s > 0:
            raise LLMConfigError(f"timeout_s must be positive, got {self.timeout_s!r}")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise LLMConfigError(f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        if not self.temperature >= 0:
            raise LLMConfigError(f"temperature must be >= 0, got {self.temperature!r}")

    @classmethod
    def from_env(
        cls,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        environ: dict | None = None,
        **options: Any,
    ) -> "LLMTeacherConfig":
        """Arguments (from flags) win; then ``LABKIT_LLM_*``; then ``OPENAI_*``; then local defaults."""
        env = os.environ if environ is None else environ
        return cls(
            base_url=base_url or env.get("LABKIT_LLM_BASE_URL") or env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
            model=model or env.get("LABKIT_LLM_MODEL") or "",
            api_key=api_key or env.get("LABKIT_LLM_API_KEY") or env.get("OPENAI_API_KEY") or LOCAL_API_KEY,
            **options,
        )

    @property
    def policy(self) -> str:
        return f"teacher:llm:{self.model}"


def display_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, fit for logs."""
    try:
        parts = urlsplit(url)
        if parts.username or parts.password:
            netloc = parts.hostname or ""
            if parts.port:
                netloc += f":{parts.port}"
            return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unreadable URL>"
    return url


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


# ----------------------------------------------------------------------------- the teacher


class LLMTeacher:
    """A :class:`labkit.env.Policy` that asks an OpenAI-compatible endpoint for every turn."""

    def __init__(self, config: LLMTeacherConfig):
        self.config = config
        self.name = config.policy
        self.client = openai.OpenAI(
            base_url=config.base_url,
            api_key=config.api_key,
            max_retries=config.max_retries,
            timeout=config.timeout_s,
        )
        self.messages: list[dict] = []
        self.tools: list[dict] = []
        self.problems: list[list[str]] = []  # format slips per turn (no phase, several calls, ...)
        self._last: tuple[str, str | None] | None = None  # ("call", tool_call_id) or ("invalid", None)

    def __repr__(self) -> str:
        return f"LLMTeacher(model={self.config.model!r}, base_url={display_url(self.config.base_url)!r})"

    def reset(self, task: Task, docs: list[dict]) -> None:
        self.messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": task.query}]
        self.tools = docs
        self.problems = []
        self._last = None

    def act(self, observation: Observation | None) -> Action:
        if observation is not None and self._last is not None:
            kind, call_id = self._last
            if kind == "call":
                self.messages.append({"role": "tool", "tool_call_id": call_id, "content": observation.content})
            else:  # the environment's reply to an unreadable turn: no tool call to attach it to
                self.messages.append({"role": "user", "content": observation.content})
        response = self._complete()
        action, assistant, call_id = self._read(response)
        self.messages.append(assistant)
        self._last = ("call", call_id) if isinstance(action, ToolCall) else ("invalid", None)
        return action

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ the request

    def _complete(self) -> Any:
        config = self.config
        request: dict[str, Any] = {
            "model": config.model,
            "messages": self.messages,
            "temperature": config.temperature,
            "max_tokens": config.max_tokens,
        }
        if self.tools:
            request["tools"] = self.tools
        if config.seed is not None:
            request["seed"] = config.seed
        where = f"{config.model!r} at {display_url(config.base_url)}"
        try:
            response = self.client.chat.completions.create(**request)
        except openai.APIStatusError as exc:
            detail = _redact(_error_detail(exc), config.api_key)
            if exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500:
                raise LLMServerError(
                    f"{where} answered HTTP {exc.status_code} after {config.max_retries} retries: {detail}"
                ) from None
            raise LLMRequestError(
                f"{where} refused the request with HTTP {exc.status_code}: {detail}. "
                "Check the model name, the API key and the base URL (it usually ends in /v1)."
            ) from None
        except openai.APITimeoutError:
            raise LLMServerError(
                f"{where} did not answer within {config.timeout_s:g} s, {config.max_retries} retries included"
            ) from None
        except openai.APIConnectionError as exc:
            cause = _redact(str(exc.__cause__ or exc), config.api_key)[:200]
            raise LLMServerError(f"cannot reach {where} after {config.max_retries} retries: {cause}") from None
        except openai.APIError as exc:  # e.g. a 200 whose body is not a chat completion
            raise LLMServerError(
                f"{where} sent a reply that is not a chat completion: {_redact(str(exc), config.api_key)[:200]}"
            ) from None
        except (ValueError, RecursionError) as exc:  # a 200 whose body is cut short, not UTF-8 or not JSON at all
            raise LLMServerError(
                f"{where} sent a body that is not JSON ({_redact(str(exc), config.api_key)[:200]}); "
                "is the base URL an OpenAI-compatible API (it usually ends in /v1)?"
            ) from None
        if not isinstance(getattr(response, "choices", None), list) or not response.choices:
            raise LLMServerError(
                f"{where} sent a reply with no choices: {_redact(str(response), config.api_key)[:200]}"
            )
        return response

    # ------------------------------------------------------------------ the reply

    def _read(self, response: Any) -> tuple[Action, dict, str | None]:
        """The action a reply expresses, the assistant message to send back next turn, and its call id."""
        turn = len(self.problems)
        message = getattr(response.choices[0], "message", None)
        content = getattr(message, "content", None)
        content = content if isinstance(content, str) else ""
        usage = getattr(response, "usage", None)
        n_tokens = getattr(usage, "completion_tokens", None)
        n_tokens = n_tokens if isinstance(n_tokens, int) and n_tokens >= 0 else None

        structured = getattr(message, "tool_calls", None) or []
        if len(content) > MAX_TURN_CHARS:
            # a runaway reply goes to parse_turn, which refuses it unread:
            # parsing time grows with the square of its tags
            structured = []
        calls = []
        for call in structured:
            function = getattr(call, "function", None)
            calls.append(
                {
                    "id": getattr(call, "id", None),
                    "type": "function",
                    "function": {
                        "name": getattr(function, "name", None),
                        "arguments": getattr(function, "arguments", None),
                    },
                }
            )
        try:
            if calls:
                raw = content + "".join(
                    f"\n<tool_call>{json.dumps(c['function'], ensure_ascii=False)}</tool_call>" for c in calls
                )
                parsed = _read_tags(content)
                parsed["tool_calls"] = calls
                result = message_action(parsed, raw, n_tokens)
            else:
                raw = content
                result = parse_turn(content, n_tokens)
            action, problems = result.action, result.problems
        except Exception as exc:  # never let an odd reply end the run
            raw = content
            action, problems = Invalid(raw, f"unreadable reply: {type(exc).__name__}", n_tokens), ["unreadable"]
        self.problems.append(problems)

        if isinstance(action, ToolCall):
            server_id = calls[0]["id"] if calls else None  # the action is the first call
            call_id = server_id if isinstance(server_id, str) and server_id else f"call_{turn}"
            arguments = action.arguments if action.arguments is not None else {}
            assistant = {
                "role": "assistant",
                "content": content.split("<tool_call>", 1)[0].strip(),
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        # Always valid JSON: an unreadable argument string goes back as a JSON string.
                        "function": {
                            "name": action.name,
                            "arguments": json.dumps(arguments, ensure_ascii=False, default=str),
                        },
                    }
                ],
            }
            return action, assistant, call_id
        if isinstance(action, Answer):
            return action, {"role": "assistant", "content": content}, None
        return action, {"role": "assistant", "content": raw}, None


def _read_tags(content: str) -> dict:
    """The phase and answer tags of a reply's text (its tool calls came structured). Never raises."""
    for text in (content, _TEXT_CALL.sub("", content)):  # a broken <tool_call> in the text as well: skip it
        if not text.strip():
            return {}
        try:
            return {k: v for k, v in parse_response(text, RESPONSE_TEMPLATE, prefix="").items() if k != "tool_calls"}
        except Exception:
            continue
    return {}


def _error_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
        if message is None and isinstance(body.get("detail"), str):
            message = body["detail"]
        text = message if isinstance(message, str) else json.dumps(body, ensure_ascii=False, default=str)
    else:
        text = str(body) if body is not None else exc.message
    return text[:300]


# ----------------------------------------------------------------------------- generation (resumable)


def _ids(path: Path, repair: bool = False) -> list[str]:
    rows = read_rows(path, repair=repair)
    return [row["task_id"] for row in rows if isinstance(row, dict) and isinstance(row.get("task_id"), str)]


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Hold an advisory lock on ``folder`` so two runs never append to the same logs (POSIX; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with (folder / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputBusyError(
                f"another LLM teacher run is writing to {folder}; wait for it to finish or pick another folder"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def attempted_ids(out_dir: str | Path) -> set[str]:
    """Task ids a generation in ``out_dir`` has finished (kept or not); a rerun skips them.

    Read-only: safe to call while a generation is writing there.
    """
    out = Path(out_dir)
    return set(_ids(out / ATTEMPTED_FILE)) | set(_ids(out / ROWS_FILE))


def generate_llm_trajectories(
    tasks: Iterable[Task],
    out_dir: str | Path,
    config: LLMTeacherConfig,
    env_config: EnvConfig | None = None,
    progress: bool = True,
    *,
    catalog=None,
    max_consecutive_errors: int = 3,
) -> Path:
    """Run every task with an :class:`LLMTeacher`; keep the successful trajectories. Returns ``out_dir``.

    Two append-only JSONL logs in ``out_dir``, each line flushed to disk:

    - ``llm_rows.jsonl``: one :func:`labkit.data.trajectory_row` per successful episode;
    - ``attempted.jsonl``: ``{"task_id", "success", "end_reason", "turns", "calls", "policy"}`` per finished
      episode, kept or not.

    Resuming: both logs are read at start (a torn last line from a kill is cut off) and every task
    found in either is skipped. A success is written to ``llm_rows.jsonl`` *before* its
    ``attempted.jsonl`` line, so a kill between the two loses nothing: the row is found and its
    missing ``attempted`` line is written then. A kill mid-episode loses only that episode, which the
    rerun runs again. Duplicate ids among ``tasks`` run once.

    Server errors: a task whose episode hits an :class:`LLMServerError` (after the client's own
    retries) is NOT marked attempted, so a rerun retries it: the error says nothing about the task,
    and marking it would silently drop it from the dataset. The run goes on with the next task, and
    stops with that error after ``max_consecutive_errors`` such tasks in a row (the server is down:
    no point spending every task's retries). :class:`LLMRequestError` (4xx: wrong model, key or URL)
    stops the run at once. Either way everything finished so far is on disk and a rerun resumes.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows_path, attempted_path = out / ROWS_FILE, out / ATTEMPTED_FILE
    with _exclusive(out):
        kept = _ids(rows_path, repair=True)  # we hold the lock: cutting a torn last line is safe
        attempted = set(_ids(attempted_path, repair=True))
        orphans = [task_id for task_id in dict.fromkeys(kept) if task_id not in attempted]
        if orphans:  # killed between a row and its attempted line: complete the record
            restored = {
                "success": True,
                "end_reason": "answered",
                "turns": None,
                "calls": None,
                "policy": config.policy,
                "restored": True,
            }
            append_rows(attempted_path, [{"task_id": task_id, **restored} for task_id in orphans])
        done = attempted | set(kept)

        unique, seen = [], set()
        for task in tasks:  # an id listed twice runs once
            if task.id not in seen:
                seen.add(task.id)
                unique.append(task)
        todo = [task for task in unique if task.id not in done]
        log.info(
            "LLM teacher: %s at %s, %d task(s) to run, %d already attempted",
            config.model,
            display_url(config.base_url),
            len(todo),
            len(unique) - len(todo),
        )
        teacher = LLMTeacher(config)
        env = ToolEnv(catalog, env_config, secrets=(config.api_key,))
        n_kept = n_errors = in_a_row = 0
        last_error: LLMServerError | None = None
        bar = tqdm(
            total=len(unique), initial=len(unique) - len(todo), desc="llm teacher", unit="task", disable=not progress
        )
        try:
            for task in todo:
                try:
                    trajectory = run_episode(env, teacher, task)
                except LLMServerError as exc:
                    n_errors, in_a_row, last_error = n_errors + 1, in_a_row + 1, exc
                    log.warning("%s: %s; not marked attempted, a rerun retries it", task.id, exc)
                    bar.set_postfix(kept=n_kept, server_errors=n_errors)
                    if in_a_row >= max_consecutive_errors:
                        raise LLMServerError(
                            f"stopping after {in_a_row} tasks in a row failed with server errors (last: {exc}). "
                            f"Everything finished so far is saved in {out}; rerun the same command to resume."
                        ) from None
                    continue
                in_a_row = 0
                if trajectory.success:
                    append_rows(rows_path, [trajectory_row(trajectory, policy=config.policy)])
                    n_kept += 1
                record = {
                    "task_id": task.id,
                    "success": trajectory.success,
                    "end_reason": trajectory.end_reason,
                    "turns": len(trajectory.steps),
                    "calls": trajectory.n_calls,
                    "policy": config.policy,
                }
                append_rows(attempted_path, [record])
                bar.update(1)
                bar.set_postfix(kept=n_kept, server_errors=n_errors)
        finally:
            bar.close()
            env.close()
            teacher.close()
        if n_errors:
            log.warning(
                "%d task(s) hit server errors and were not marked attempted; rerun to retry them (last error: %s)",
                n_errors,
                last_error,
            )
    return out


# ----------------------------------------------------------------------------- serving the lab's model


def write_serving_folder(model_dir: str | Path, out_dir: str | Path, parse_tool_calls: bool = False) -> Path:
    """A folder ``transformers serve`` can serve with the lab's chat template (tools included).

    The weights and configs are linked (copied where links are not allowed), and the tokenizer is
    saved with :data:`labkit.protocol.CHAT_TEMPLATE`.

    - ``parse_tool_calls=False`` (the default): no response template, so the server returns the
      model's raw text as ``content`` (as llama.cpp does without ``--jinja``) and the teacher
      parses the tool calls itself. A malformed call then becomes an error the agent sees.
    - ``parse_tool_calls=True``: :data:`SERVE_RESPONSE_TEMPLATE`, so calls come back as structured
      ``tool_calls``. But when the model writes malformed JSON inside ``<tool_call>``, the server's
      parser raises and it answers HTTP 500 (transformers 5.17): the client retries, and the task
      ends as an :class:`LLMServerError`. Fine for capable models, costly for a 135M one.
    """
    from transformers import AutoTokenizer

    source, out = Path(model_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.response_template = SERVE_RESPONSE_TEMPLATE if parse_tool_calls else None
    tokenizer.save_pretrained(out)
    for path in source.iterdir():
        target = out / path.name
        if target.exists() or target.is_symlink() or not path.is_file():
            continue
        try:
            target.symlink_to(path.resolve())
        except OSError:
            shutil.copy2(path, target)
    return out
