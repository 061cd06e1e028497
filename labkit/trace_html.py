"""Trace HTML: one episode's row rendered for the trace viewer (``apps/trace_viewer.py``) and the notebooks.

The viewer shows an episode as its timeline (:func:`timeline_html`), outcome (:func:`outcome_html`) and tool
documentation (:func:`tool_docs_html`); the notebooks show the same turns and outcome as a transcript
(:func:`transcript_html`) and an SFT row's label mask (:func:`label_mask_html`), drawn by the same code in the
same colours as GRPO's loss spans (:func:`loss_spans_html`). Every string that came from a trace is escaped before
it is rendered: HTML-escaped, or backslash-escaped for Markdown (:func:`markdown_text`). A row's turns, and how
each is coloured, are read by :mod:`labkit.episode`.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any, Iterable

from labkit.episode import Turn, TurnKind, episode_turns
from labkit.plots import PHASE_COLOURS
from labkit.trace_files import Run, failure_of, float_or_none
from labkit.trace_queries import weighted_component

TURN_COLOURS = {**PHASE_COLOURS, "correction": "#d97706"}
TURN_MEANINGS = {
    TurnKind.TRIAL: "a call that tests what a tool accepts or returns (a rejected probe is how it learns)",
    TurnKind.EXECUTION: "a call that solves the task",
    TurnKind.ERROR: "a call to solve the task, or a turn, that the environment rejected",
    TurnKind.CORRECTION: "the first call that works after an error",
    TurnKind.ANSWER: "the final answer",
}
LONG_TEXT = 600  # characters of an observation shown before it is collapsed
MAX_TEXT = 20_000  # characters of any one text rendered at all; the rest is counted, not shown
SKIPPED_EXAMPLES = 5  # corrupt lines named in a run's summary
LEARNED_STYLE = "background:#dcfce7;color:#14532d"  # text that carries loss: the model is trained to write it
CONTEXT_STYLE = "color:#6b7280"  # text the model only reads


# ----------------------------------------------------------------------------- text, escaped


def _esc(value: Any) -> str:
    text = str(value)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + f" ... [{len(text) - MAX_TEXT:,} more characters not shown]"
    return html.escape(text, quote=True)


def markdown_text(value: Any) -> str:
    """Text as one line of Markdown that shows it as it is: with every ASCII punctuation mark backslash-escaped,
    no link, image, emphasis, autolink or HTML can form (a link's ?run= is anyone's text)."""
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", " ".join(str(value)[:MAX_TEXT].split()))


def run_markdown(run: Run) -> str:
    """One line of Markdown about an opened run: size, opening time, and the corrupt lines left out."""
    text = (
        f"**{markdown_text(run.ref.id)}** ({run.ref.kind}): "
        f"{len(run.episodes):,} episodes, opened in {run.seconds:.2f} s."
    )
    if run.skipped:
        shown = markdown_text(", ".join(run.skipped[:SKIPPED_EXAMPLES])) + (
            ", ..." if len(run.skipped) > SKIPPED_EXAMPLES else ""
        )
        text += f" Skipped {len(run.skipped):,} corrupt line{'s' if len(run.skipped) > 1 else ''} ({shown})."
    return text


def _json(value: Any) -> Any:
    """A JSON string column (tools, changes, gold_answer) as data; anything else as it is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def call_text(tool: str, arguments: Any) -> str:
    """A tool call as code: name(key=value, ...), or the raw arguments when they are not a JSON object."""
    parsed = _json(arguments) if arguments not in (None, "") else {}
    if isinstance(parsed, dict):
        return f"{tool}({', '.join(f'{k}={json.dumps(v, ensure_ascii=False)}' for k, v in parsed.items())})"
    return f"{tool}({arguments})"


def phase_legend_html() -> str:
    chips = "".join(
        f'<span class="tv-chip" data-kind="{kind}" title="{html.escape(TURN_MEANINGS[kind])}" '
        f'style="display:inline-block;margin:0 10px 4px 0"><span style="display:inline-block;width:11px;height:11px;'
        f'border-radius:3px;background:{TURN_COLOURS[kind]};vertical-align:middle;margin-right:4px"></span>'
        f"<b>{kind}</b>: {html.escape(TURN_MEANINGS[kind])}</span>"
        for kind in TurnKind
    )
    return f'<div class="tv-legend" style="font-size:13px">{chips}</div>'


def _observation_html(turn: Turn) -> str:
    if turn.observation is None:
        return ""
    colour = TURN_COLOURS["error"] if turn.error else "inherit"
    label = f'<span style="opacity:.6;font-size:11px">{"error" if turn.error else "returned"}</span> '
    style = f"margin:2px 0 0;white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px;color:{colour}"
    if len(turn.observation) <= LONG_TEXT:
        return f'<div class="tv-obs">{label}<pre style="{style};display:inline">{_esc(turn.observation)}</pre></div>'
    head = _esc(turn.observation[:160])
    return (
        '<details class="tv-obs tv-long">'
        f'<summary style="cursor:pointer;font-size:12px;overflow-wrap:anywhere">{label}{head} ... '
        f"<i>({len(turn.observation):,} characters: show all)</i></summary>"
        f'<pre style="{style}">{_esc(turn.observation)}</pre></details>'
    )


def _turn_html(turn: Turn) -> str:
    colour = TURN_COLOURS[turn.kind]
    stated = f"wrote {turn.phase}" if turn.phase != turn.kind else ""
    notes = " · ".join(n for n in (f"turn {turn.number}", stated, f"error: {turn.error}" if turn.error else "") if n)
    call = (
        '<div class="tv-call"><span style="opacity:.6;font-size:11px">call</span> '
        f"<code>{_esc(call_text(turn.tool, turn.arguments))}</code></div>"
        if turn.tool
        else ""
    )
    return (
        f'<div class="tv-turn" data-kind="{turn.kind}" style="border-left:5px solid {colour};'
        f'background:{colour}12;border-radius:4px;padding:6px 10px;margin:6px 0">'
        f'<div class="tv-head" style="font-size:12px"><span class="tv-kind" style="background:{colour};color:#fff;'
        f'border-radius:3px;padding:1px 6px;font-weight:600">{turn.kind}</span> '
        f'<span style="opacity:.75">{_esc(notes)}</span></div>'
        '<div class="tv-text" style="white-space:pre-wrap;overflow-wrap:anywhere;margin-top:3px">'
        f"{_esc(turn.text.strip())}</div>"
        f"{call}{_observation_html(turn)}</div>"
    )


def _task_and_turns_html(row: dict) -> str:
    turns = "".join(_turn_html(t) for t in episode_turns(row))
    return (
        f'<div class="tv-query" style="font-size:15px;margin:4px 0 8px"><b>Task:</b> {_esc(row.get("query", ""))}</div>'
        f"{turns or '<p>(no turns)</p>'}"
    )


def timeline_html(row: dict) -> str:
    """The episode turn by turn, each coloured by its kind (trial, execution, error, correction, answer)."""
    facts = [
        ("task", row.get("task_id", "")),
        ("split", row.get("split", "")),
        ("level", row.get("level", "")),
        (
            "families",
            ", ".join(map(str, families)) if isinstance(families := row.get("families") or [], list) else families,
        ),
        ("policy", row.get("policy", "")),
    ]
    if row.get("seed") is not None:
        facts.append(("seed", row["seed"]))
    header = " · ".join(f"{name} <b>{_esc(value)}</b>" for name, value in facts)
    return (
        f'<div class="tv-timeline"><div class="tv-meta" style="font-size:12px;opacity:.8">{header}</div>'
        f"{_task_and_turns_html(row)}</div>"
    )


def outcome_html(row: dict, weights: dict[str, float] | None = None) -> str:
    """The final answer against the gold answer, the verdict, and any
    reward components (weighted, with ``weights``, so they add up)."""
    success = bool(row.get("success"))
    verdict_colour = TURN_COLOURS["execution"] if success else TURN_COLOURS["error"]
    verdict = "solved" if success else f"failed: {failure_of(row)}"
    gold = _json(row.get("gold_answer", ""))
    lines = [
        f'<div class="tv-outcome" data-success="{str(success).lower()}" '
        f'style="border:1px solid {verdict_colour};border-radius:6px;padding:8px 10px">',
        f'<div style="font-weight:700;color:{verdict_colour}">{_esc(verdict)}</div>',
        f'<div>answer: <code class="tv-answer">{_esc(row.get("answer", ""))}</code></div>',
        '<div>gold: <code class="tv-gold">'
        f"{_esc(json.dumps(gold, ensure_ascii=False) if not isinstance(gold, str) else gold)}</code>"
        f' <span style="opacity:.7">(check: {_esc(row.get("check", "?"))})</span></div>',
        '<div style="font-size:12px;opacity:.75">ended: '
        f"{_esc(row.get('end_reason', ''))} · trials {_esc(row.get('n_trials', ''))}"
        f" · calls {_esc(row.get('n_calls', ''))} · errors {_esc(row.get('n_errors', ''))} "
        f"· recoveries {_esc(row.get('n_recoveries', ''))}</div>",
    ]
    rewards = row.get("rewards")
    if isinstance(rewards, dict) or row.get("reward") is not None:
        cell = "padding:1px 10px;border:none"
        shown = {
            (f"{k} × {weights[k]:g}" if weights and k in weights else k): weighted_component(v, k, weights)
            for k, v in (rewards or {}).items()
        }
        cells = "".join(
            f"<tr><td style='{cell}'>{_esc(k)}</td><td style='{cell};text-align:right'>{_number(v)}</td></tr>"
            for k, v in shown.items()
        )
        for name in ("reward", "advantage"):
            if row.get(name) is not None:
                cells += (
                    f"<tr><td style='{cell}'><b>{name}</b></td>"
                    f"<td style='{cell};text-align:right'><b>{_number(row[name])}</b></td></tr>"
                )
        lines.append(
            '<table class="tv-rewards" style="margin:6px 0 0;font-size:13px;width:auto">'
            f'<tr><th style="{cell}">reward component</th><th style="{cell}">value</th></tr>{cells}</table>'
        )
    lines.append("</div>")
    return "".join(lines)


def transcript_html(row: dict) -> str:
    """A trace row as the notebooks show it (teacher data, evaluation traces, GRPO groups): the viewer's timeline
    without the run's facts, then the outcome."""
    return f'<div class="tv-timeline">{_task_and_turns_html(row)}</div>{outcome_html(row)}'


def _number(value: Any) -> str:
    number = float_or_none(value)
    return _esc(value) if number is None else f"{number:+.3f}"


def _type_text(spec: Any) -> str:
    """A parameter's type; an enum as its first values, so long unit lists stay on one line."""
    spec = spec if isinstance(spec, dict) else {}
    if "enum" in spec:
        values = [str(v) for v in spec["enum"]]
        return " | ".join(values[:3]) + (f" | ... ({len(values)} values)" if len(values) > 3 else "")
    return str(spec.get("type", "?"))


def _signature_html(function: dict | None, other: dict | None) -> str:
    """name(param: type, optional?: type); parameters the other side lacks are marked."""
    if function is None:
        return '<span style="opacity:.6">not documented</span>'
    params = (function.get("parameters") or {}).get("properties") or {}
    required = set((function.get("parameters") or {}).get("required") or [])
    theirs = ((other or {}).get("parameters") or {}).get("properties") or {}
    parts = []
    for name, spec in params.items():
        text = f"{_esc(name)}{'' if name in required else '?'}: {_esc(_type_text(spec))}"
        parts.append(
            f'<mark title="the other side has no {_esc(name)}">{text}</mark>'
            if other is not None and name not in theirs
            else text
        )
    notes = "".join(
        f"<li><code>{_esc(name)}</code>: {_esc((spec or {}).get('description', ''))}</li>"
        for name, spec in params.items()
        if other is not None
        and name in theirs
        and (spec or {}).get("description") != (theirs[name] or {}).get("description")
    )
    return (
        "<code style='white-space:normal;overflow-wrap:anywhere'>"
        f"{_esc(function.get('name', ''))}({', '.join(parts)})</code>"
        + (f'<ul style="margin:2px 0;font-size:12px">{notes}</ul>' if notes else "")
    )


def tool_docs_html(row: dict) -> str:
    """For evolved tools: the documentation the agent saw beside the tool's real signature, and what changed."""
    changes = _json(row.get("changes") or "[]")
    if not changes:
        return (
            '<div class="tv-docs" style="font-size:13px;opacity:.8">'
            "Tools as documented: nothing was changed (level 0).</div>"
        )
    docs = {
        d["function"]["name"]: d["function"]
        for d in _json(row.get("tools") or "[]")
        if isinstance(d, dict) and "function" in d
    }
    real = {
        d["function"]["name"]: d["function"]
        for d in _json(row.get("real_tools") or "[]")
        if isinstance(d, dict) and "function" in d
    }
    changed = {str(c.get("tool")) for c in changes if isinstance(c, dict)}
    names = sorted((changed | (set(real) - set(docs))) & (set(docs) | set(real)))
    rows = "".join(
        f'<tr><td style="vertical-align:top">{_signature_html(docs.get(n), real.get(n))}</td>'
        f'<td style="vertical-align:top">{_signature_html(real.get(n), docs.get(n))}</td></tr>'
        for n in names
    )
    what = "".join(
        f"<li><b>{_esc(c.get('operator', ''))}</b> on "
        f"<code>{_esc(c.get('tool', ''))}</code>: {_esc(c.get('detail', ''))}</li>"
        for c in changes
        if isinstance(c, dict)
    )
    return (
        '<div class="tv-docs" style="font-size:13px"><table style="width:100%;table-layout:fixed">'
        "<tr><th>documentation the agent saw</th><th>the tool as it really is</th></tr>"
        f'{rows}</table><div style="margin-top:4px"><b>What changed</b> (hidden '
        f'from the agent):<ul style="margin:2px 0">{what}</ul></div></div>'
    )


def episode_html(row: dict, weights: dict[str, float] | None = None) -> str:
    """Everything about one episode in one column (the Compare view puts two side by side)."""
    return timeline_html(row) + outcome_html(row, weights) + '<div style="height:8px"></div>' + tool_docs_html(row)


def _loss_text_html(pieces: Iterable[tuple[str, bool]]) -> str:
    """Text in pieces, those that carry loss highlighted: GRPO's loss spans and an SFT row's label mask alike."""
    spans = "".join(
        f'<span class="tv-span" data-loss="{str(loss).lower()}" style="{LEARNED_STYLE if loss else CONTEXT_STYLE}">'
        f"{_esc(text)}</span>"
        for text, loss in pieces
    )
    return f'<pre style="white-space:pre-wrap;word-break:break-word;font-size:12px;line-height:1.5">{spans}</pre>'


def loss_spans_html(row: dict) -> str:
    """The completion as GRPO trained on it: text that carried loss (the model's own tokens) highlighted."""
    spans = row.get("loss_spans")
    if not isinstance(spans, list) or not spans:
        return "<p>This row has no loss_spans: which tokens carried loss was not recorded.</p>"
    pieces = [(str(s[0]), bool(s[1])) for s in spans if isinstance(s, (list, tuple)) and len(s) == 2]
    total = sum(len(text) for text, _ in pieces)
    carried = sum(len(text) for text, loss in pieces if loss)
    share = f"{carried / total:.0%}" if total else "0%"
    return (
        '<div class="tv-loss"><p style="font-size:13px">'
        f'<span style="{LEARNED_STYLE}">highlighted</span> '
        "text carried loss (sampled by the model); the rest (tool "
        f"results, template) did not: {share} of {total:,} characters.</p>"
        f"{_loss_text_html(pieces)}</div>"
    )


def label_mask_html(row: dict, tokenizer) -> str:
    """A training row token by token: highlighted tokens carry labels (the model learns to write them), grey ones
    are context.

    The mask is the chat template's assistant mask, the one TRL's ``assistant_only_loss`` uses.
    """
    encoded = tokenizer.apply_chat_template(
        row["messages"], tools=_json(row["tools"]), tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    tokens, mask = encoded["input_ids"], encoded["assistant_masks"]
    learned = sum(mask)
    header = f"<p><b>{learned}</b> of {len(tokens)} tokens carry labels ({learned / len(tokens):.0%}).</p>"
    return header + _loss_text_html((tokenizer.decode([token]), bool(m)) for token, m in zip(tokens, mask))
