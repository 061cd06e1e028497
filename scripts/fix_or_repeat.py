"""After a failed call, does a policy prefer the fix or the same call again? Read off its probabilities.

    python scripts/fix_or_repeat.py --policy runs/t400/sft-trial --data data/trajectories/trial-train \\
        --tasks runs/dev/train-dev.jsonl

Every teacher trajectory where a failed execution call is followed by a different call of the same tool (the fix)
gives one state: the conversation up to the error. The policy scores two next turns there, both with the teacher's
reason: the fix, and the failed call again. The fix wins a state when it is the likelier of the two. It does this
on the trajectories the policy was trained on (``--data``) and on the same teacher's trajectories of tasks it never
saw (``--tasks``, played here), so memorised fixes and a learned rule read apart. The diagnosis behind README's
"Learning from its own mistakes".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from labkit.data import load_dataset_dir
from labkit.models import load_model
from labkit.tasks import load_tasks
from labkit.teach import TeachConfig, run_teacher
from labkit.tools import load_catalog


def fix_states(rows) -> list[tuple[list[dict], list[dict], dict, dict]]:
    """(messages up to the error, tools, the fix turn, the same turn with the failed call) per state."""
    states = []
    for row in rows:
        messages, docs = row["messages"], json.loads(row["tools"])
        for i in range(1, len(messages) - 1):
            failed, error, fix = messages[i - 1], messages[i], messages[i + 1]
            if not (error["role"] == "tool" and error["content"].startswith('{"error"') and fix.get("tool_calls")):
                continue
            if not failed.get("tool_calls") or "<trial>" in (failed.get("content") or ""):
                continue
            before, after = failed["tool_calls"][0]["function"], fix["tool_calls"][0]["function"]
            if before["name"] == after["name"] and before["arguments"] != after["arguments"]:
                repeat = {**fix, "tool_calls": [{**fix["tool_calls"][0], "function": before}]}
                states.append((messages[: i + 1], docs, fix, repeat))
    return states


@torch.no_grad()
def fix_margins(loaded, states) -> list[float]:
    """log P(fix) - log P(the failed call again), per state, under the loaded policy."""
    tokenizer, model = loaded.tokenizer, loaded.model.eval()

    def log_prob(messages: list[dict], docs: list[dict]) -> float:
        text = tokenizer.apply_chat_template(messages, tools=docs, tokenize=False)
        ids = tokenizer(text, return_tensors="pt").input_ids
        logits = model(ids).logits[0, :-1].float()
        return float(torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None]).sum())

    # The common start of both conversations scores the same, so the difference is the two turns' difference.
    return [
        log_prob([*context, fix], docs) - log_prob([*context, repeat], docs) for context, docs, fix, repeat in states
    ]


def summary(label: str, margins: list[float]) -> str:
    wins = sum(margin > 0 for margin in margins)
    return f"{label}: the fix is likelier than the same call again in {wins} of {len(margins)} states"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", required=True, help="a run or adapter folder, or a model name (smollm2-135m)")
    parser.add_argument("--data", required=True, help="the trial teacher dataset the policy was trained on")
    parser.add_argument("--tasks", required=True, help="tasks JSONL it never trained on, for the same teacher")
    parser.add_argument("--max-states", type=int, default=150, help="states scored on each side")
    args = parser.parse_args(argv)
    tasks = load_tasks(args.tasks)
    fresh, _ = run_teacher(TeachConfig(teacher="trial", tasks_file=args.tasks), tasks, load_catalog(), progress=False)
    sides = {
        f"trained on ({Path(args.data).name})": load_dataset_dir(args.data),
        f"new tasks ({Path(args.tasks).name})": fresh,
    }
    loaded = load_model(args.policy, profile="cpu")
    for label, rows in sides.items():
        print(summary(label, fix_margins(loaded, fix_states(rows)[: args.max_states])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
