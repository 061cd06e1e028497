"""What a policy does right after one of its calls fails: the same call again, a changed call, or nothing.

    python scripts/after_error.py runs/dev/t400-trial

For every failed call outside a trial in the evaluated episodes (``episodes.jsonl`` of ``labkit eval``), it reads
the next turn and counts, by the error's kind (value errors by what the message asks for): the identical call
again, a changed call that fails too, a changed call that works, or no call (an answer, an unreadable turn, the
end of the budget). Then how many of the repeats come under a reason that announces a fix (one of the trial
teacher's recovery sentences), the call unchanged. The diagnosis behind README's "Not the learner's own mistakes":
SFT-trial mostly repeats the failed call, whatever the error says, while saying it fixes it.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from labkit.episode import Episode, Phase
from labkit.gaps import read_episodes
from labkit.teachers.scripted import PHRASES

OUTCOMES = ("same call again", "changed, fails", "changed, works", "no call")
VALUE_ERRORS = {  # what an invalid_value message asks for, by a phrase in it
    "upper-case": "upper-case",
    "expected format": "date format",
    "must be one of": "one of a list",
    "unknown ": "a known ID or name",
}

RECOVERY_OPENINGS = tuple(sentence.split("{learned}")[0] for sentence in PHRASES["recover"])


def error_kind(kind: str, observation: str | None) -> str:
    """The error's type, and for a rejected value what the message asks for instead."""
    if kind != "invalid_value":
        return kind
    try:
        message = json.loads(observation or "")["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = ""
    asked = next((what for phrase, what in VALUE_ERRORS.items() if phrase in message), "other")
    return f"invalid_value: {asked}"


def after_errors(rows: list[dict]) -> tuple[Counter, int]:
    """``Counter[(error kind, outcome)]`` over every failed call outside the trial phase, and how many of the
    repeats announced a fix."""
    counts, announced = Counter(), 0
    for row in rows:
        turns = Episode.from_row(row).turns
        for turn, after in zip(turns, [*turns[1:], None]):
            if turn.phase != Phase.EXECUTION or not turn.error:
                continue
            if after is None or not after.tool:
                outcome = "no call"
            elif after.call == turn.call:
                outcome = "same call again"
                announced += any(opening in after.text for opening in RECOVERY_OPENINGS)
            else:
                outcome = "changed, fails" if after.error else "changed, works"
            counts[error_kind(turn.error, turn.observation), outcome] += 1
    return counts, announced


def table(counts: Counter, announced: int) -> list[str]:
    by_kind = Counter()
    for (kind, _), n in counts.items():
        by_kind[kind] += n
    lines = ["| failed call | n | " + " | ".join(OUTCOMES) + " |", "|:--|--:|" + "--:|" * len(OUTCOMES)]
    for kind, n in by_kind.most_common():
        lines.append(f"| {kind} | {n} | " + " | ".join(str(counts[kind, o]) for o in OUTCOMES) + " |")
    total = sum(by_kind.values())
    totals = [sum(n for (_, o), n in counts.items() if o == outcome) for outcome in OUTCOMES]
    lines.append(f"| all | {total} | " + " | ".join(str(n) for n in totals) + " |")
    lines.append(f"\nsame call again under a reason that announces a fix: {announced} of {totals[0]}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", help="evaluation folders (each with episodes.jsonl)")
    args = parser.parse_args(argv)
    rows = [row for folder in args.folders for row in read_episodes(folder)]
    print("\n".join(table(*after_errors(rows))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
