"""labkit.course: how every lesson notebook opens (profile, --run, data folder, quiet progress bars)."""

from pathlib import Path

import pytest

from labkit.course import LessonSetup, open_lesson, quiet_progress_bars

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))


class StandInMarimo:
    """What open_lesson reads from the `marimo` module, as a notebook opened with `args` would see it."""

    def __init__(self, args: dict, notebook_dir: Path = REPO / "notebooks"):
        self._args, self._dir = args, notebook_dir

    def cli_args(self) -> dict:
        return self._args

    def notebook_dir(self) -> Path:
        return self._dir


@pytest.fixture
def progress_bars_back_on():
    """The libraries' progress bars are on before a test (an earlier test may have quieted them) and after it."""
    from datasets.utils.logging import enable_progress_bar
    from transformers.utils.logging import enable_progress_bar as enable_transformers_progress_bar

    enable_progress_bar()
    enable_transformers_progress_bar()
    yield
    enable_progress_bar()
    enable_transformers_progress_bar()


def test_the_notebooks_arguments_pick_the_profile_before_the_environment(monkeypatch, progress_bars_back_on):
    monkeypatch.setenv("LABKIT_PROFILE", "tiny")
    lesson = open_lesson(StandInMarimo({"profile": "cpu"}))
    assert isinstance(lesson, LessonSetup)
    assert lesson.profile.name == "cpu" and not lesson.run_all


def test_without_arguments_the_environment_picks_and_the_processes_own_argv_is_ignored(
    monkeypatch, progress_bars_back_on
):
    monkeypatch.setenv("LABKIT_PROFILE", "tiny")
    monkeypatch.setattr(
        "sys.argv", ["marimo", "edit", "--profile", "gpu"]
    )  # marimo's own command line, not the notebook's
    assert open_lesson(StandInMarimo({})).profile.name == "tiny"


def test_run_presses_every_button(monkeypatch, progress_bars_back_on):
    monkeypatch.setenv("LABKIT_PROFILE", "tiny")
    assert open_lesson(StandInMarimo({"run": ""})).run_all


def test_the_data_folder_sits_beside_the_notebooks(monkeypatch, progress_bars_back_on):
    monkeypatch.setenv("LABKIT_PROFILE", "tiny")
    lesson = open_lesson(StandInMarimo({}))
    assert lesson.data_dir == REPO / "data"
    assert open_lesson(StandInMarimo({}, notebook_dir=Path("/somewhere/lab/notebooks"))).data_dir == Path(
        "/somewhere/lab/data"
    )


def test_it_says_which_profile_and_model_the_lesson_runs_at(monkeypatch, capsys, progress_bars_back_on):
    monkeypatch.setenv("LABKIT_PROFILE", "tiny")
    open_lesson(StandInMarimo({"profile": "cpu"}))
    assert capsys.readouterr().out == "profile: cpu (model: smollm2-135m)\n"


def test_an_unknown_profile_is_refused_by_name(progress_bars_back_on):
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        open_lesson(StandInMarimo({"profile": "huge"}))


def test_opening_a_lesson_quiets_the_libraries_progress_bars(monkeypatch, progress_bars_back_on):
    from datasets.utils.logging import is_progress_bar_enabled
    from transformers.utils.logging import is_progress_bar_enabled as transformers_bars

    monkeypatch.setenv("LABKIT_PROFILE", "tiny")
    assert is_progress_bar_enabled() and transformers_bars()
    open_lesson(StandInMarimo({}))
    assert not is_progress_bar_enabled() and not transformers_bars()
    quiet_progress_bars()  # twice is fine
    assert not is_progress_bar_enabled()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_opens_with_the_helper(notebook):
    source = notebook.read_text()
    assert "open_lesson(mo)" in source
    assert "resolve_profile(" not in source and "quiet_progress_bars(" not in source  # one opening, in labkit/course.py
