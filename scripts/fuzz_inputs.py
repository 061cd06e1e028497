"""Throw random and hostile inputs at the lab's input layers and count what escapes.

    python scripts/fuzz_inputs.py [--n 20000] [--seed 0]

Four layers, each with its contract:

- ``parse_turn``: any text gives a ``ParsedTurn``;
- ``ToolEnv.step``: any action gives a ``StepResult``, and every finished episode encodes as UTF-8 JSON;
- ``load_tasks``: any file gives tasks that an environment can reset to, or a ``TaskFileError``;
- ``load_dataset_dir``: any file gives a dataset or a ``DatasetFileError``.

Anything else is a crash. Prints, per layer, the inputs tried, the crashes (with the first few) and the
slowest input's time.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from labkit.data import DatasetFileError, load_dataset_dir, trajectory_row, write_dataset
from labkit.env import Answer, EnvConfig, Invalid, ToolCall, ToolEnv
from labkit.protocol import MARKUP, ParsedTurn, parse_turn
from labkit.tasks import TaskFileError, generate_tasks, load_tasks
from labkit.tools import load_catalog

MISBEHAVING_TOOLS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "misbehaving_tools.py"


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


@dataclass
class Tally:
    layer: str
    tried: int = 0
    crashes: list[str] = field(default_factory=list)
    slowest_s: float = 0.0

    def run(self, check, *args) -> None:
        self.tried += 1
        start = time.perf_counter()
        try:
            check(*args)
        except Exception:  # noqa: BLE001 (counting every escape is the point)
            self.crashes.append(traceback.format_exc(limit=3).strip().splitlines()[-1])
        self.slowest_s = max(self.slowest_s, time.perf_counter() - start)

    def line(self) -> str:
        return (
            f"{self.layer:18s} {self.tried:7,d} inputs  {len(self.crashes):4d} crashes  slowest {self.slowest_s:.3f} s"
        )


# ----------------------------------------------------------------------------- hostile values


def hostile_text(rng: random.Random) -> str:
    pieces = [
        *MARKUP,
        "{",
        "}",
        "[",
        "]",
        '"name"',
        '"arguments"',
        ":",
        ",",
        '"get_capital"',
        '{"country": "Japan"}',
        "\\ud83d",
        "\ud83d",
        "9" * rng.choice((3, 4301)),
        "[" * rng.choice((10, 3000)),
        "\x00",
        "\u202e",
        "é",
        "🙂",
        " ",
        "\n",
        "NaN",
        "Infinity",
    ]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))


def hostile_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(12)
    if kind == 0:
        return 10 ** rng.choice((3, 5000))
    if kind == 1:
        nested: list = []
        for _ in range(rng.choice((3, 5000))):
            nested = [nested]
        return nested
    if kind == 2:
        return Unprintable()
    if kind == 3:
        return {1, 2, 3}
    if kind == 4:
        return b"\xff\xfe"
    if kind == 5:
        return float(rng.choice(("nan", "inf", "-inf")))
    if kind == 6 and depth < 2:
        return {hostile_text(rng)[:8]: hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if kind == 7 and depth < 2:
        return [hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == 8:
        return None
    if kind == 9:
        return rng.random() < 0.5
    return hostile_text(rng)


# ----------------------------------------------------------------------------- the layers


def check_parse(text) -> None:
    assert isinstance(parse_turn(text), ParsedTurn)


def random_action(rng: random.Random, names: list[str]):
    name = rng.choice([*names, hostile_value(rng), None])
    arguments = rng.choice(
        [
            hostile_value(rng),
            {rng.choice(["text", "a", "country", "city", "kind", "value"]): hostile_value(rng)},
            hostile_text(rng),
        ]
    )
    return rng.choice(
        [
            ToolCall(
                name,
                arguments,
                rng.choice(["trial", "execution", hostile_value(rng)]),
                hostile_value(rng),
                rng.choice([None, -1, 10**9]),
            ),
            Answer(hostile_value(rng), hostile_value(rng)),
            Invalid(hostile_value(rng), hostile_value(rng)),
            hostile_value(rng),
        ]
    )


def check_episode(env: ToolEnv, task, actions: list) -> None:
    env.reset(task)
    for action in actions:
        if env.step(action).done:
            break
    json.dumps(trajectory_row(env.trajectory, "fuzz"), ensure_ascii=False).encode("utf-8")


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    how = rng.randrange(6)
    if how == 0:
        return data[: rng.randint(0, len(data))]
    if how == 1:
        return b"\xef\xbb\xbf" + data
    if how == 2:
        cut = rng.randint(0, len(data))
        return data[:cut] + bytes([rng.randrange(256)]) + data[cut + 1 :]
    if how == 3:
        return data + b"\xff\xfe\n"
    if how == 4:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    return data


JSON_LITERALS = (
    "9" * 4301,
    "[" * 3000 + "]" * 3000,
    "Infinity",
    "NaN",
    '"\\ud83d"',
    "5",
    "[1, 2]",
    '"x"',
    "{}",
    "null",
    "true",
    "-1",
    "1e999",
    '[{"name": 1}]',
)
TASK_FIELDS = (
    "id",
    "query",
    "tools",
    "answer",
    "check",
    "tolerance",
    "split",
    "level",
    "evolve_seed",
    "calls",
    "families",
    "hops",
    "meta",
    "template",
)


def task_file(rng: random.Random, rows: list[dict]) -> bytes:
    """Three generated tasks with up to two fields each set to a hostile JSON literal, then the bytes mutated."""
    lines = []
    for row in rng.sample(rows, 3):
        row = {**row, **{name: "<hostile>" for name in rng.sample(TASK_FIELDS, rng.randint(0, 2))}}
        lines.append(json.dumps(row, ensure_ascii=False).replace('"<hostile>"', rng.choice(JSON_LITERALS)))
    return mutate_bytes(rng, "\n".join(lines).encode("utf-8"))


def check_tasks(path: Path, env: ToolEnv) -> None:
    try:
        tasks = load_tasks(path, env.catalog)
    except TaskFileError:
        return
    for task in tasks:  # what loads must run
        env.reset(task)
        env.step(Answer(str(task.answer)))


def check_dataset(path: Path) -> None:
    try:
        load_dataset_dir(path)
    except DatasetFileError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, default=20_000, help="parse_turn inputs and ToolEnv.step actions (files: n/10 and n/40)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    catalog = load_catalog([MISBEHAVING_TOOLS])
    quiet = [name for name in catalog.tools if name not in ("hang", "escape")]  # hangs and spins cost a timeout each
    tasks = generate_tasks("evolved", 50, seed=args.seed, catalog=catalog)
    env = ToolEnv(catalog, EnvConfig(timeout_s=0.5, max_turns=12))
    tallies = [Tally("parse_turn"), Tally("ToolEnv.step"), Tally("load_tasks"), Tally("load_dataset_dir")]

    for _ in range(args.n):
        tallies[0].run(check_parse, rng.choice([hostile_text(rng), hostile_value(rng)]))
    for _ in range(args.n // 10):  # episodes of 10 actions
        task = rng.choice(tasks)
        tallies[1].run(check_episode, env, task, [random_action(rng, quiet + task.tools) for _ in range(10)])
    tallies[1].tried *= 10

    rows = [json.loads(t.to_json()) for t in tasks]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        good = write_dataset(
            [trajectory_row(_solved(env, task), "fuzz") for task in tasks[:4]], folder / "good", "card"
        )
        parquet, jsonl = (good / "data.parquet").read_bytes(), "\n".join(json.dumps(r) for r in rows).encode()
        for i in range(args.n // 10):
            path = folder / f"tasks-{i}.jsonl"
            path.write_bytes(task_file(rng, rows))
            tallies[2].run(check_tasks, path, env)
        for i in range(args.n // 40):
            suffix, data = rng.choice([(".parquet", parquet), (".jsonl", jsonl)])
            path = folder / f"data-{i}{suffix}"
            path.write_bytes(mutate_bytes(rng, data))
            tallies[3].run(check_dataset, path)
    env.close()

    for tally in tallies:
        print(tally.line())
        for crash in tally.crashes[:3]:
            print(f"    {crash}")
    return 1 if any(t.crashes for t in tallies) else 0


def _solved(env: ToolEnv, task):
    env.reset(task)
    env.step(Answer(str(task.answer)))
    return env.trajectory


if __name__ == "__main__":
    sys.exit(main())
