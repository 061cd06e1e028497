"""Every figure the lab writes carries the command that reproduces it."""

from PIL import Image

from labkit import plots


def test_a_saved_figure_prints_its_command_under_it_wrapped_to_the_figures_width(tmp_path):
    command = "labkit ablation --profile cpu --n 100 --seeds 3 --token-budget 100000 --rl-steps 30 " * 3
    command = command.strip()
    curve = {"sft-trial": [[1, 2.0], [2, 1.0]]}
    plots.loss_curve(curve).savefig(tmp_path / "bare.png", dpi=110, bbox_inches="tight")
    figure = plots.loss_curve(curve)
    plots.save(figure, tmp_path / "captioned.png", command)

    lines = figure.texts[-1].get_text().split("\n")
    assert " ".join(lines) == f"$ {command}", "wrapping loses nothing of the command"
    assert len(lines) >= 3 and all(len(line) <= figure.get_figwidth() * 16 for line in lines)
    with Image.open(tmp_path / "bare.png") as bare, Image.open(tmp_path / "captioned.png") as captioned:
        # The canvas grows to hold the lines (about 11 px a line at 7 pt and 110 dpi), rather than cutting them off.
        assert captioned.height >= bare.height + 10 * len(lines)
        assert abs(captioned.width - bare.width) <= 0.05 * bare.width
