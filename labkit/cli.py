"""`labkit <stage>`: every notebook stage, headless, with the notebooks' defaults.

The options of a stage with a config dataclass (teach, eval, sft, rl, ablation, demo) are built from the
dataclass's fields (:func:`add_config_options`), so an option is written once, beside the field it sets.

Longer than the lab's ~450 lines per module: one short parser and entry point per stage, read as a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
import types
import typing
from pathlib import Path

from labkit.ablation import AblationConfig
from labkit.demo import DemoConfig
from labkit.engine import EngineNotAvailableError
from labkit.evaluate import EvalConfig
from labkit.rl import RLRunConfig
from labkit.sft import SFTRunConfig
from labkit.tasks import SPLITS
from labkit.teach import TeachConfig
from labkit.tools.registry import TOOLS_MODULE_OPTION

# ----------------------------------------------------------------------------- options from the configs


def add_config_options(parser: argparse.ArgumentParser, config: type) -> None:
    """One option per field of the dataclass ``config``, in field order: ``token_budget`` is ``--token-budget``,
    with the field's type and default.

    A field's metadata says the rest. ``help``, ``choices``, ``metavar`` and ``required`` go to argparse as they
    are; ``flag`` names the option where the field's name does not; ``parse`` turns the option's text into the
    field's value (a comma-separated list) when :func:`config_from_args` builds the config, so a bad value is the
    stage's error rather than argparse's; ``option: False`` keeps a field off the command line.
    """
    hints = typing.get_type_hints(config)
    for spec in dataclasses.fields(config):
        default = spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default
        add_option(parser, spec.name, hints[spec.name], default, spec.metadata)


def add_option(parser: argparse.ArgumentParser, name: str, hint, default, metadata) -> None:
    """The option of one field (see :func:`add_config_options`): a ``bool`` is a switch, a ``list`` repeats."""
    options = dict(metadata)
    if not options.pop("option", True):
        return
    options.pop("parse", None)
    own_flag = "--" + name.replace("_", "-")
    flag = options.pop("flag", own_flag)
    if isinstance(hint, types.UnionType):  # `int | None`: an option left out takes the default, None included
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if hint is bool:
        parser.add_argument(flag, dest=name, action="store_true", default=default, **options)
        return
    if flag != own_flag and "choices" not in options:
        options.setdefault("metavar", flag[2:].upper().replace("-", "_"))  # what argparse calls the flag's value
    if typing.get_origin(hint) is list:
        options.update(action="append", type=typing.get_args(hint)[0])
    elif hint in (int, float):
        options["type"] = hint
    parser.add_argument(flag, dest=name, default=default, **options)


def config_from_args(config: type, args: argparse.Namespace, **values):
    """The ``config`` a command line asks for: its options' values, and ``values`` for fields set by hand."""
    for spec in dataclasses.fields(config):
        if spec.name in vars(args) and spec.name not in values:
            value, parse = getattr(args, spec.name), spec.metadata.get("parse")
            values[spec.name] = parse(value) if parse and isinstance(value, str) else value
    return config(**values)


# ----------------------------------------------------------------------------- the stages


def _catalog(args: argparse.Namespace):
    from labkit.tools import load_catalog

    return load_catalog(args.tools_modules)


def cmd_doctor(args: argparse.Namespace) -> int:
    from labkit.doctor import format_report, machine_report

    print(format_report(machine_report()))
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    # The app is apps/trace_viewer.py in the lab's checkout (labkit is installed from it in editable mode);
    # loading it by path keeps apps/ out of the installed package.
    import importlib.util

    app_file = Path(__file__).resolve().parents[1] / "apps" / "trace_viewer.py"
    if not app_file.is_file():
        print(
            f"labkit view: no {app_file}; the trace viewer ships with the "
            "lab's checkout, so install labkit from it (pip install -e .)",
            file=sys.stderr,
        )
        return 2
    spec = importlib.util.spec_from_file_location("trace_viewer", app_file)
    viewer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(viewer)
    viewer.serve(args.paths, args.port)
    return 0


def cmd_tools_list(args: argparse.Namespace) -> int:
    catalog = _catalog(args)
    unseen = set(catalog.unseen_families)
    for family in catalog.families:
        if args.family and family != args.family:
            continue
        tools = catalog.family(family)
        print(f"{family} ({len(tools)} tools{', unseen: never trained on' if family in unseen else ''})")
        for tool in tools:
            params = ", ".join(tool.parameters.get("properties", {}))
            print(f"  {tool.name}({params}): {tool.description.splitlines()[0] if tool.description else ''}")
    print(f"{len(catalog)} tools in {len(catalog.families)} families")
    return 0


def cmd_tools_evolve(args: argparse.Namespace) -> int:
    from labkit.tool_world import evolution_demo

    demo = evolution_demo(_catalog(args), args.name, args.level, args.seed)
    print(f"# {args.name} at level {args.level}, seed {args.seed}")
    print("\nThe agent still reads:")
    print(json.dumps(demo.docs, indent=2))
    print("\nWhat really changed:")
    for change in demo.changes:
        print(f"  - {change.operator}: {change.detail}")
    if not demo.changes:
        print("  nothing (level 0)")
    print(f"\nCalling it as documented with {json.dumps(demo.arguments)}:\n  {demo.observation.content}")
    return 0


def cmd_tools_call(args: argparse.Namespace) -> int:
    from labkit.tool_world import evolution_demo

    catalog = _catalog(args)
    try:
        arguments = json.loads(args.args)
    except json.JSONDecodeError as exc:
        print(f'--args must be a JSON object, e.g. \'{{"city": "Paris"}}\': {exc.msg}', file=sys.stderr)
        return 2
    observation = evolution_demo(catalog, args.name, args.level, args.seed, arguments).observation
    print(observation.content)
    return 0 if observation.ok else 1


def cmd_tasks_generate(args: argparse.Namespace) -> int:
    from labkit.tasks import generate_tasks, save_tasks

    tasks = generate_tasks(args.split, args.n, args.seed, args.level, _catalog(args))
    path = save_tasks(tasks, args.out)
    print(f"wrote {len(tasks)} {args.split} tasks to {path}")
    return 0


def cmd_teach(args: argparse.Namespace) -> int:
    from labkit.models import ModelNotAvailableError, load_tokenizer
    from labkit.teach import teach

    config = config_from_args(TeachConfig, args)
    try:
        tokenizer = load_tokenizer()
    except ModelNotAvailableError as exc:
        print(f"note: token lengths left out of the card: {exc}", file=sys.stderr)
        tokenizer = None
    llm = None
    if args.teacher == "llm":
        from labkit.teachers.llm import LLMTeacherConfig, LLMTeacherError

        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
        )
        if not args.verbose:  # one line per HTTP request would drown the progress bar
            for name in ("httpx", "httpx2"):
                logging.getLogger(name).setLevel(logging.WARNING)
        llm = LLMTeacherConfig.from_env(
            args.base_url,
            args.model,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            max_retries=args.max_retries,
            timeout_s=args.timeout,
            seed=args.seed,
        )
        try:
            out = teach(config, tokenizer=tokenizer, llm=llm)
        except LLMTeacherError as exc:
            print(f"labkit teach: {exc}", file=sys.stderr)
            return 1
    else:
        out = teach(config, tokenizer=tokenizer)
    print(f"wrote {out}/data.parquet and {out}/README.md")
    print((out / "README.md").read_text().split("## An error")[0])
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from labkit.evaluate import METRICS, evaluate, format_metric

    config = config_from_args(EvalConfig, args)
    metrics = evaluate(config)
    for name in METRICS:
        print(f"{name:22s} {format_metric(metrics, name)}")
    print(f"n = {metrics['n']}; failures: {metrics['failures']}")
    print(f"wrote {config.out}/metrics.json, report.md, traces/")
    return 0


def cmd_bfcl(args: argparse.Namespace) -> int:
    from labkit.bfcl import BFCLNotAvailableError, evaluate_bfcl
    from labkit.models import ModelNotAvailableError

    try:
        summary = evaluate_bfcl(
            args.model,
            args.categories,
            args.limit,
            args.out,
            args.seed,
            args.max_new_tokens,
            args.batch_size,
            progress=True,
        )
    except (BFCLNotAvailableError, ModelNotAvailableError) as exc:
        print(f"labkit bfcl: {exc}", file=sys.stderr)
        return 2
    for category, row in summary["categories"].items():
        low, high = row["ci95"]
        print(
            f"{category:14s} accuracy {row['accuracy']:.3f} [{low:.3f}, {high:.3f}]  n={row['n']}  ({row['seconds']} s)"
        )
        print(f"{'':14s} errors: {row['error_types']}")
    if args.out:
        print(f"wrote {args.out}/bfcl.json and bfcl_items.jsonl")
    return 0


def cmd_sft(args: argparse.Namespace) -> int:
    from labkit.sft import train_sft

    config = config_from_args(SFTRunConfig, args)
    card = train_sft(config)
    print(
        f"{card['steps']} steps on {card['data']['rows']} rows "
        f"({card['data']['tokens']} tokens) in {card['seconds']} s, "
        f"{card['tokens_per_second']} tokens/s; final loss {card['final_loss']}"
    )
    print(
        f"wrote {config.out} (adapter, run_card.json, README.md, "
        f"loss.png); evaluate it with `labkit eval --policy {config.out}`"
    )
    return 0


def _reward_settings(pairs: list[str]) -> dict:
    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            settings[name.strip()] = int(value) if name.strip().startswith("max_") else float(value)
        except ValueError:
            raise SystemExit(f"--reward wants NAME=NUMBER (e.g. format=0 to switch format off), got {pair!r}") from None
        if not sep:
            raise SystemExit(f"--reward wants NAME=NUMBER (e.g. format=0 to switch format off), got {pair!r}")
    return settings


def rl_config(args: argparse.Namespace) -> RLRunConfig:
    """The RLRunConfig of a `labkit rl` command line."""
    from labkit.rewards import RewardConfig

    try:
        rewards = RewardConfig.from_dict(_reward_settings(args.reward))
    except ValueError as error:
        raise SystemExit(f"--reward: {error}") from None
    return config_from_args(RLRunConfig, args, rewards=rewards)


def cmd_rl(args: argparse.Namespace) -> int:
    from labkit.rl import train_rl

    config = rl_config(args)
    card = train_rl(config)
    last = card["last_steps"]
    print(
        f"{card['steps']} steps x {card['episodes_per_step']} episodes in {card['seconds']} s; "
        f"last 5 steps: reward {last['reward']:.3f}, success "
        f"{last['episode/success']:.3f}, trials/episode {last['episode/trials']:.2f}"
    )
    print(
        f"wrote {config.out} (adapter, rollouts/, run_card.json, README.md, "
        f"curves.png); evaluate it with `labkit eval --policy {config.out}`"
    )
    return 0


def cmd_ablation(args: argparse.Namespace) -> int:
    from labkit.ablation import run_ablation, success_table

    try:
        config = config_from_args(AblationConfig, args)
    except ValueError as error:
        raise SystemExit(f"labkit ablation: {error}") from None
    result = run_ablation(config)
    print(f"wrote {config.report}\n")
    print("\n".join(success_table(config, result["metrics"], result["pooled"])))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from labkit.gaps import compare_evaluations, comparison_table

    rows = compare_evaluations(args.folders, args.minus)
    print("\n".join(comparison_table(rows)))
    if args.plot:
        from labkit import plots

        args.plot.parent.mkdir(parents=True, exist_ok=True)
        command = [
            "labkit",
            "compare",
            *map(str, args.folders),
            "--minus",
            *map(str, args.minus),
            "--plot",
            str(args.plot),
        ]
        plots.save(plots.gap_chart(rows), args.plot, shlex.join(command))
        print(f"wrote {args.plot}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from labkit.ablation import success_table
    from labkit.demo import run_demo

    config = config_from_args(DemoConfig, args)
    result = run_demo(config)
    print(f"\nwrote {config.report}\n")
    print("\n".join(success_table(config.ablation(), result["metrics"], result["pooled"])))
    for name, same in result["same_as_shipped"].items():
        print(f"{name}: {'identical to' if same else 'differs from'} the shipped data/{name}")
    print("time: " + ", ".join(f"{stage} {seconds / 60:.1f} min" for stage, seconds in result["seconds"].items()))
    print(f"\nRead the episodes in the trace viewer:  labkit view {config.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit", description="ToolMaster Lab: trial-and-execution tool learning.")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("doctor", help="what this machine has and which profile to use").set_defaults(func=cmd_doctor)

    def with_tools_module(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        add_option(p, "tools_modules", list[str], [], TOOLS_MODULE_OPTION)
        return p

    tools = sub.add_parser("tools", help="browse, call and evolve tools").add_subparsers(
        dest="tools_command", required=True
    )
    p = with_tools_module(tools.add_parser("list", help="list tool families and tools"))
    p.add_argument("--family")
    p.set_defaults(func=cmd_tools_list)
    for name, func, help_text in (
        ("evolve", cmd_tools_evolve, "show how a tool changes at a level, and what its errors say"),
        ("call", cmd_tools_call, "call a tool (optionally evolved) once"),
    ):
        p = with_tools_module(tools.add_parser(name, help=help_text))
        p.add_argument("name")
        p.add_argument("--level", type=int, default=0, choices=range(5))
        p.add_argument("--seed", type=int, default=0)
        if name == "call":
            p.add_argument("--args", default="{}", help="JSON object of arguments")
        p.set_defaults(func=func)

    tasks = sub.add_parser("tasks", help="generate tasks").add_subparsers(dest="tasks_command", required=True)
    p = with_tools_module(tasks.add_parser("generate", help="write seeded tasks as JSONL"))
    p.add_argument("--split", choices=SPLITS, required=True)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--level", type=int, choices=range(5), help="fix the evolution level (evolved split)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_tasks_generate)

    p = sub.add_parser("teach", help="write teacher trajectories as an HF dataset with a card")
    add_config_options(p, TeachConfig)
    llm = p.add_argument_group(
        "LLM teacher (--teacher llm)",
        "An OpenAI-compatible endpoint. The key comes only from LABKIT_LLM_API_KEY or OPENAI_API_KEY: "
        "a flag would show in `ps` and shell history. Rerun the same command to resume.",
    )
    llm.add_argument("--base-url", help="default: $LABKIT_LLM_BASE_URL, $OPENAI_BASE_URL or http://127.0.0.1:8000/v1")
    llm.add_argument("--model", help="default: $LABKIT_LLM_MODEL")
    llm.add_argument("--temperature", type=float, default=0.2)
    llm.add_argument("--max-tokens", type=int, default=256, help="model tokens per turn")
    llm.add_argument("--max-retries", type=int, default=4, help="the client's retries, with backoff, on server errors")
    llm.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    llm.add_argument("--verbose", action="store_true", help="debug logging, HTTP requests included")
    p.set_defaults(func=cmd_teach)

    p = sub.add_parser("eval", help="evaluate a policy: metrics with 95%% CIs, failure taxonomy, report, traces")
    add_config_options(p, EvalConfig)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("sft", help="fine-tune on teacher trajectories (TRL SFTTrainer, LoRA); rerun to resume")
    add_config_options(p, SFTRunConfig)
    p.set_defaults(func=cmd_sft)

    p = sub.add_parser("rl", help="GRPO in the live tool environment (TRL GRPOTrainer, LoRA); rerun to resume")
    add_config_options(p, RLRunConfig)
    p.add_argument(
        "--reward",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a reward weight or guard setting, e.g. --reward format=0 --reward max_trials=2 (repeatable)",
    )
    p.set_defaults(func=cmd_rl)

    p = sub.add_parser(
        "ablation",
        help=(
            "base, SFT-golden, SFT-recover, SFT-trial, SFT-trial+GRPO and "
            "GRPO-only on seen, evolved and unseen; writes reports/ablation.md"
        ),
    )
    add_config_options(p, AblationConfig)
    p.set_defaults(func=cmd_ablation)

    p = sub.add_parser(
        "compare",
        help="success of one set of evaluations minus another's, paired on shared episodes, with 95%% intervals",
    )
    p.add_argument("folders", nargs="+", type=Path, help="evaluation folders (episodes.jsonl) of A")
    p.add_argument(
        "--minus", nargs="+", type=Path, required=True, help="B's folders, as many as A's, in the same order"
    )
    p.add_argument("--plot", type=Path, help="also draw the differences and their intervals to this PNG")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("demo", help="the whole course headless: data, SFT, GRPO, evaluation, report (reports/demo/)")
    add_config_options(p, DemoConfig)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bfcl", help="score a model on BFCL simple_python and multiple with BFCL's own AST checker")
    p.add_argument(
        "--model", default="smollm2-135m", help="smollm2-135m, tiny, an adapter or checkpoint folder, or a hub id"
    )
    p.add_argument(
        "--categories", nargs="+", choices=("simple_python", "multiple"), default=["simple_python", "multiple"]
    )
    p.add_argument("--limit", type=int, help="items per category: a seeded random subset (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", type=Path, help="write bfcl.json and bfcl_items.jsonl here")
    p.set_defaults(func=cmd_bfcl)

    p = sub.add_parser("view", help="the trace viewer (Gradio, 127.0.0.1): runs under ./data and ./runs, and PATHS")
    p.add_argument(
        "paths", nargs="*", type=Path, help="more trace files or run folders to open (the viewer reads nothing else)"
    )
    p.add_argument("--port", type=int, help="default: 7860, or the next free port")
    p.set_defaults(func=cmd_view)
    return parser


def main(argv: list[str] | None = None) -> int:
    from labkit.models import ModelNotAvailableError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, OSError, ModelNotAvailableError, EngineNotAvailableError) as exc:
        # Library errors already say what to do; a traceback would bury that.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"labkit {args.command}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
