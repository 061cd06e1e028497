"""One episode read from its trace row: typed turns, and the facts that rewards, metrics and the viewer share.

A trace row (:func:`labkit.data.trajectory_row`) stores an episode as Hugging Face chat
``messages`` beside per-turn columns (``phases``, ``errors``). This module reads them once
into :class:`Turn` records, and :class:`Episode` derives from those turns every fact that
more than one part of the lab asks about: the rewards (:mod:`labkit.rewards`), the failure
taxonomy and metrics (:mod:`labkit.evaluate`), and the turns the trace viewer and the
notebooks show (:mod:`labkit.trace_html`). Each fact is defined here, once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    """What a turn was, as the environment recorded it (``labkit.env.Step.phase``)."""

    TRIAL = "trial"  # a call that probes what a tool really accepts or returns
    EXECUTION = "execution"  # a call that does the task
    INVALID = "invalid"  # output that parsed to no action
    ANSWER = "answer"  # the final answer


class EndReason(StrEnum):
    """Why an episode ended (``labkit.env.Trajectory.end_reason``; "" while it runs)."""

    ANSWERED = "answered"
    BUDGET_CALLS = "budget_calls"
    BUDGET_TURNS = "budget_turns"
    BUDGET_TOKENS = "budget_tokens"
    BUDGET_LENGTH = "budget_length"  # labkit.rollout: the transcript would outgrow the model's context


def out_of_budget(end_reason: str) -> bool:
    """Whether an episode was cut off by one of its budgets instead of ending in an answer."""
    return end_reason.startswith("budget")


# ----------------------------------------------------------------------------- turns


class TurnKind(StrEnum):
    """A turn as the trace viewer colours it: its phase, except that mistakes and their fixes stand out."""

    TRIAL = "trial"
    EXECUTION = "execution"
    ERROR = "error"
    CORRECTION = "correction"
    ANSWER = "answer"


@dataclass(frozen=True)
class Turn:
    """One assistant turn: what the agent wrote, the call it made, and what came back."""

    number: int  # 1-based
    phase: str  # a Phase, as the row recorded it (or as the text reads, for rows without a phases column)
    kind: TurnKind
    text: str
    tool: str = ""  # "" when the turn made no call
    arguments: Any = None  # the call's arguments as stored (a JSON string)
    observation: str | None = None  # the tool's result, or the environment's word on an unreadable turn
    error: str = ""  # the error type of a failed call or an unreadable turn (an ErrorKind value); "" otherwise

    @property
    def call(self) -> tuple[str, Any]:
        return self.tool, self.arguments


def turn_kind(phase: str, error: str, previous: TurnKind | None) -> TurnKind:
    """trial/execution as the agent stated, except: a rejected call to solve the task (or an unreadable turn) is
    an error, and the next one that works a correction. A trial stays a trial: a rejected probe is how it learns."""
    if phase in (Phase.ANSWER, Phase.TRIAL):
        return TurnKind(phase)
    if error or phase == Phase.INVALID:
        return TurnKind.ERROR
    if previous == TurnKind.ERROR:
        return TurnKind.CORRECTION
    return TurnKind.EXECUTION


def _observation_error(observation: str | None) -> str:
    """The error type inside an observation like {"error": {"type": ...}}; "" for a result."""
    if not observation or not observation.lstrip().startswith('{"error"'):
        return ""
    try:
        return str(json.loads(observation)["error"]["type"])
    except (ValueError, KeyError, TypeError):
        return "error"


def _exchanges(messages: list[dict]) -> list[tuple[dict, str | None]]:
    """Each assistant message with the message that answered
    it (a tool result, or the user's for an unreadable turn)."""
    exchanges: list[tuple[dict, str | None]] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            exchanges.append((message, None))
        elif role in ("tool", "user") and exchanges and exchanges[-1][1] is None:
            exchanges[-1] = (exchanges[-1][0], str(message.get("content") or ""))
    return exchanges


def _read_turns(messages: list[dict], phases: list, errors: list) -> list[Turn]:
    """Turns from the messages, with phases and errors from
    their columns where the row has them (else from the text)."""
    turns: list[Turn] = []
    for n, (message, observation) in enumerate(_exchanges(messages)):
        text = str(message.get("content") or "")
        calls = message.get("tool_calls")
        call = calls[0] if isinstance(calls, list) and calls and isinstance(calls[0], dict) else {}
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        phase = str(phases[n]) if n < len(phases) else Phase.ANSWER if "<answer>" in text else Phase.EXECUTION
        error = str(errors[n]) if n < len(errors) else _observation_error(observation)
        kind = turn_kind(phase, error, turns[-1].kind if turns else None)
        turns.append(
            Turn(
                n + 1, phase, kind, text, str(function.get("name") or ""), function.get("arguments"), observation, error
            )
        )
    return turns


def episode_turns(row: dict) -> list[Turn]:
    """The turns of any trace row; one without phases or errors columns is read from its text and observations."""
    return _read_turns(row["messages"], list(row.get("phases") or []), list(row.get("errors") or []))


def turn_calls(row: dict) -> list[tuple[str, Any]]:
    """(tool, arguments) of each assistant turn's call; ("", None) where the turn made none."""
    return [turn.call for turn in episode_turns(row)]


# ----------------------------------------------------------------------------- episodes


@dataclass(frozen=True)
class Episode:
    """A finished episode as its turns, with the facts read from them."""

    turns: list[Turn]
    success: bool
    end_reason: str  # an EndReason

    @classmethod
    def from_row(cls, row: dict) -> Episode:
        """The episode of a row the lab wrote: its phases and errors columns are required, as the facts rest on them."""
        return cls(_read_turns(row["messages"], row["phases"], row["errors"]), bool(row["success"]), row["end_reason"])

    @property
    def out_of_budget(self) -> bool:
        return out_of_budget(self.end_reason)

    @property
    def trials(self) -> list[Turn]:
        return [turn for turn in self.turns if turn.phase == Phase.TRIAL]

    @property
    def executions(self) -> list[Turn]:
        """The calls made to do the task."""
        return [turn for turn in self.turns if turn.phase == Phase.EXECUTION]

    @property
    def made_a_call(self) -> bool:
        return any(turn.tool for turn in self.turns)

    @property
    def execution_worked(self) -> bool:
        """Whether any call to do the task succeeded."""
        return any(not turn.error for turn in self.executions)

    @property
    def trialled_tools(self) -> set[str]:
        return {turn.tool for turn in self.trials if turn.tool}

    @property
    def called_trialled_tool(self) -> bool:
        """Whether a trialled tool was called to do the task, whether or not that call worked."""
        trialled = self.trialled_tools
        return any(turn.tool in trialled for turn in self.executions)

    @property
    def used_trialled_tool(self) -> bool:
        """Whether a trialled tool was called to do the task and that call worked."""
        trialled = self.trialled_tools
        return any(turn.tool in trialled and not turn.error for turn in self.executions)

    @property
    def repeated_failures(self) -> list[Turn]:
        """Failed calls identical (tool and arguments) to the failed call just before them, in order."""
        return [
            turn
            for previous, turn in zip(self.turns, self.turns[1:])
            if turn.tool and turn.call == previous.call and turn.error and previous.error
        ]

    @property
    def errors_outside_trials(self) -> list[str]:
        """Error types of the failed turns that were not trials:
        a trial's error is how a probe learns, not a mistake."""
        return [turn.error for turn in self.turns if turn.error and turn.phase != Phase.TRIAL]
