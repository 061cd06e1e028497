"""How likely a policy is to write a list where a tool takes one, with its probe in the context and without.

    python scripts/array_after_probe.py --policy runs/t800/sft-trial --episodes runs/t800/eval/sft-trial-unseen

For every evaluated episode that opened with a probe (an empty call) of a tool with an array parameter, it
rebuilds the prompt of the real call twice: after the probe and its error, and straight after the task (the probe
and its error left out). Both end in the same start of the call, up to the array parameter's value, and the
policy's probability that the value opens with ``[`` is read off the next token. The diagnosis behind README's
"Not types in the reason": SFT-trial builds values wrong after a probe, and this isolates the probe's part in it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from labkit.gaps import read_episodes
from labkit.models import load_model

REAL_CALL = '<execute>Now the real call.</execute>\n<tool_call>\n{{"name": "{tool}", "arguments": {{"{parameter}":'


def probed_array_calls(rows: list[dict]) -> list[tuple[list[dict], list[dict], str, str]]:
    """(messages up to and including the probe's error, its tools, the tool, its array parameter) per episode."""
    found = []
    for row in rows:
        messages, docs = row["messages"], json.loads(row["tools"])
        if len(messages) < 4 or not messages[2].get("tool_calls"):
            continue
        call = messages[2]["tool_calls"][0]["function"]
        if json.loads(call["arguments"] or "{}"):
            continue  # not a probe
        schema = next((d["function"] for d in docs if d["function"]["name"] == call["name"]), None)
        properties = (schema or {}).get("parameters", {}).get("properties", {})
        arrays = [name for name, spec in properties.items() if spec.get("type") == "array"]
        if arrays:
            found.append((messages[:4], docs, call["name"], arrays[0]))
    return found


@torch.no_grad()
def list_probability(policy: str, episodes: str | Path) -> dict[str, list[float]]:
    """``{"after the probe": [p, ...], "without it": [p, ...]}``: the chance of ``[`` at each value."""
    loaded = load_model(policy, profile="cpu")
    tokenizer, model = loaded.tokenizer, loaded.model.eval()
    opens = sorted({tokenizer.encode(text)[0] for text in ("[", " [")})
    chances = {"after the probe": [], "without it": []}
    for messages, docs, tool, parameter in probed_array_calls(read_episodes(episodes)):
        start = REAL_CALL.format(tool=tool, parameter=parameter)
        for label, context in (("after the probe", messages), ("without it", messages[:2])):
            prompt = tokenizer.apply_chat_template(context, tools=docs, tokenize=False, add_generation_prompt=True)
            ids = tokenizer(prompt + start, return_tensors="pt").input_ids
            chances[label].append(float(torch.softmax(model(ids).logits[0, -1].float(), -1)[opens].sum()))
    return chances


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", required=True, help="a run or adapter folder, or a model name (smollm2-135m)")
    parser.add_argument("--episodes", required=True, help="an evaluation folder of that policy (episodes.jsonl)")
    args = parser.parse_args()
    chances = list_probability(args.policy, args.episodes)
    for label, values in chances.items():
        likely = sum(value > 0.5 for value in values)
        mean = sum(values) / len(values) if values else float("nan")
        print(f"{label}: mean P('[') {mean:.3f}, above 0.5 in {likely} of {len(values)} episodes")


if __name__ == "__main__":
    main()
