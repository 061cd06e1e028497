"""What every lesson notebook does when it opens: its run size, whether to press every button, where the data is.

Each notebook's first code cell ends with one line, so the lessons open the same way and a change to
that opening is made once::

    lesson = open_lesson(mo)
    profile, run_all, data_dir = lesson.profile, lesson.run_all, lesson.data_dir

Nothing here imports torch; ``datasets`` is imported only to switch its progress bars off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.profiles import Profile, resolve_profile


@dataclass(frozen=True)
class LessonSetup:
    """What a notebook reads from how it was opened."""

    profile: (
        Profile  # the run size: `--profile NAME` after the notebook's path, else LABKIT_PROFILE, else the doctor's pick
    )
    run_all: bool  # `python notebooks/NN_name.py --run` presses every button (headless runs, tests)
    data_dir: Path  # the lab's shipped data/, beside notebooks/


def quiet_progress_bars() -> None:
    """Notebook cells show their own progress; the datasets and
    transformers libraries' bars would only fill cell outputs."""
    from datasets.utils.logging import disable_progress_bar
    from transformers.utils.logging import disable_progress_bar as disable_transformers_progress_bar

    disable_progress_bar()
    disable_transformers_progress_bar()


def open_lesson(mo: Any) -> LessonSetup:
    """Open a lesson: quiet the libraries' progress bars, resolve the profile, and print which one this run uses.

    ``mo`` is the notebook's ``marimo`` module: the profile and ``--run`` come from ``mo.cli_args()`` (the
    arguments after the notebook's path, never the Python process's own), the data folder from
    ``mo.notebook_dir()``.
    """
    quiet_progress_bars()
    args = mo.cli_args()
    profile = resolve_profile(args.get("profile"), argv=[])
    print(f"profile: {profile.name} (model: {profile.model})")
    return LessonSetup(profile=profile, run_all="run" in args, data_dir=Path(mo.notebook_dir()).parent / "data")
