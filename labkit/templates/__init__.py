"""The lab's fixed text, as Jinja templates in this folder: the chat template every policy is trained and run with
(``chat.jinja``, read by :mod:`labkit.protocol`), and the Markdown cards and reports written beside datasets, runs,
evaluations and ablations (``*.md.jinja``, filled by :func:`render` with what the code measured)."""

from __future__ import annotations

from functools import cache

import jinja2


def format_number(value: float | None, digits: int = 3) -> str:
    """The templates' ``number`` filter: ``digits`` decimals, or n/a for a figure a run did not measure."""
    return "n/a" if value is None else f"{value:.{digits}f}"


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("labkit", "templates"),
        undefined=jinja2.StrictUndefined,  # a slot the code forgot to fill is an error, not an empty cell
        trim_blocks=True,  # a line holding only a {% tag %} leaves nothing in the output
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["number"] = format_number
    return environment


def render(name: str, **slots) -> str:
    """The Markdown template ``name`` of this folder, filled in."""
    return _environment().get_template(name).render(**slots)
