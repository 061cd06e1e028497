"""The trained policies the lessons show: the runs notebooks 03 and 04 train, and the shipped ones standing in for them.

Training in class takes a while, so each notebook opens on what ``labkit ablation`` trained at the cpu profile and
shipped (``data/adapters/``, ``reports/``), and moves to the learner's own runs (``runs/notebook-sft/``,
``runs/notebook-rl/``) once they exist.
"""

from __future__ import annotations

from pathlib import Path

from labkit.models import ADAPTER_CONFIG
from labkit.profiles import SHIPPED_INIT, get_profile

SHIPPED_ADAPTERS = "data/adapters"  # the ablation's trained adapters, for machines too slow to train in class
SHIPPED_RL = "sft-trial-grpo"  # the GRPO run shipped in data/adapters/, for machines too slow to train in class
SFT_ARMS = ("sft-golden", "sft-trial")  # the runs notebook 03 trains

TRAINED_SOURCES = ("yours (notebooks 03 and 04)", "shipped (data/adapters)")  # notebook 05 starts on the shipped ones


def shipped_adapter(name: str, root: str | None = None) -> str | None:
    """The folder of a shipped adapter (``sft-golden``, ``sft-trial``), or None when it is not there."""
    folder = Path(root or SHIPPED_ADAPTERS) / name
    return str(folder) if (folder / ADAPTER_CONFIG).is_file() else None


def sft_configs(profile: str, data_dir, out_root: str = "runs/notebook-sft") -> dict:
    """Notebook 03's two runs, ``{arm: SFTRunConfig}``, at the profile's size; the folders notebook 05 looks in."""
    from labkit.sft import SFTRunConfig

    name = get_profile(profile).name
    return {
        arm: SFTRunConfig(
            data=str(Path(data_dir) / "trajectories" / f"{arm[4:]}-train"), profile=name, out=f"{out_root}/{name}/{arm}"
        )
        for arm in SFT_ARMS
    }


def rl_init(profile: str, adapters_root: str | None = None) -> tuple[str, str]:
    """The policy GRPO starts from at this profile, and a sentence saying which.

    At the cpu size that is the shipped SFT-trial adapter (found under ``adapters_root``, so it
    works from any folder); without it, the base model (the GRPO-only arm).
    """
    profile_ = get_profile(profile)
    init = profile_.rl.init
    if init != SHIPPED_INIT:
        return init, f"GRPO starts from `{init}`, the {profile_.name} profile's model."
    folder = shipped_adapter("sft-trial", adapters_root)
    if folder is not None:
        return folder, "GRPO starts from the shipped SFT-trial adapter (notebook 03): SFT first, then RL."
    return profile_.model, (
        f"The shipped SFT-trial adapter is not in `{adapters_root or SHIPPED_ADAPTERS}/sft-trial`, "
        f"so GRPO starts from the base model `{profile_.model}` (the GRPO-only arm). "
        "Run `labkit ablation --profile cpu --ship data/adapters` to make it."
    )


def notebook_rl_config(profile: str, data_dir, out_root: str = "runs/notebook-rl"):
    """The notebook's short GRPO run: the profile's RL size, a few steps, from :func:`rl_init`'s policy."""
    from labkit.rl import RLRunConfig

    chosen = get_profile(profile)
    name = chosen.name
    data_dir = Path(data_dir)
    init, _ = rl_init(name, str(data_dir / "adapters"))
    return RLRunConfig(
        init=init,
        profile=name,
        out=f"{out_root}/{name}/{SHIPPED_RL}",
        tasks=str(data_dir / "tasks" / "train.jsonl"),
        steps=chosen.notebook.rl_steps,
        prompts_per_step=chosen.notebook.rl_prompts_per_step,
    )


def shipped_rl_status(profile: str, root: str | None = None) -> tuple[str | None, str]:
    """The shipped GRPO run's folder (None when it is missing), and a sentence saying what it is.

    Its curves, card and logged groups are results to read at any profile; it was trained at the cpu profile.
    """

    where = f"{root or SHIPPED_ADAPTERS}/{SHIPPED_RL}"
    folder = shipped_adapter(SHIPPED_RL, root)
    if folder is None:
        return None, (
            f"*No shipped GRPO run in `{where}` yet: press **Train** to train one. To ship one: "
            f"`labkit rl --init data/adapters/sft-trial --profile cpu --out {SHIPPED_ADAPTERS}/{SHIPPED_RL}`.*"
        )
    other = get_profile(profile).name != "cpu"
    return folder, (
        f"*The shipped GRPO run is in `{where}`{' (trained at the cpu profile, not this one)' if other else ''}: "
        "its curves show below until your own run finishes.*"
    )


def trained_policies(profile: str, source: str, adapters_root: str | None = None) -> dict[str, str]:
    """The trained policies to compare, ``{arm: folder}``: the runs
    of notebooks 03-04, or the shipped ones; only those present.

    The shipped adapters were trained at the cpu profile, so other profiles get none of them.
    """

    name = get_profile(profile).name
    if source == TRAINED_SOURCES[1]:
        if name != "cpu":
            return {}
        folders = {
            arm: f"{adapters_root or SHIPPED_ADAPTERS}/{arm}"
            for arm in ("sft-golden", "sft-recover", "sft-trial", SHIPPED_RL)
        }
    else:
        folders = {arm: f"runs/notebook-sft/{name}/{arm}" for arm in ("sft-golden", "sft-trial")}
        folders[SHIPPED_RL] = f"runs/notebook-rl/{name}/{SHIPPED_RL}"
    return {arm: folder for arm, folder in folders.items() if (Path(folder) / ADAPTER_CONFIG).is_file()}


def report_parts(report) -> tuple[str, list]:
    """A Markdown report's text after its title, without image lines, and the image files it shows."""
    report = Path(report)
    if not report.is_file():
        return "", []
    lines = report.read_text(encoding="utf-8").splitlines()[1:]
    images = [report.parent / line.split("](", 1)[1].rstrip(")") for line in lines if line.startswith("![")]
    return "\n".join(line for line in lines if not line.startswith("![")), [p for p in images if p.is_file()]


def first_table(markdown: str) -> str:
    """The first Markdown table in a text (a report's headline result), or ''."""
    table = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    return "\n".join(table)


def ablation_success(report) -> dict[str, float]:
    """``{arm: success on evolved + unseen}`` from the ablation
    report's headline table (the shipped numbers); {} without it."""
    text, _ = report_parts(report)
    table = [line.strip("|").split("|") for line in first_table(text).splitlines()]
    if len(table) < 3:
        return {}
    column = [cell.strip() for cell in table[0]].index("evolved + unseen")
    return {row[0].strip(): float(row[column].split()[0]) for row in table[2:]}
