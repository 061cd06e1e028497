"""`labkit` under `accelerate launch`, with a record of what each process trained (for test_distributed.py).

    accelerate launch --config_file configs/accelerate/ddp.yaml --num_processes 2 tests/distributed_probe.py \
        sft ... --then rl ...

It runs the commands ``--then`` separates one after another in the same processes. For each,
each process writes ``$LABKIT_PROBE_DIGESTS/COMMAND-rank-N.json``: a sha256 of its trainable
weights when training starts and when it ends, how many processes there were and
what wrapped its model.
"""

import hashlib
import json
import os
import sys
import zlib
from pathlib import Path

import labkit.rl
import labkit.sft
from labkit.cli import main

DIGESTS = Path(os.environ["LABKIT_PROBE_DIGESTS"])
THEN = "--then"
stage = ""  # the command running now: its records are named after it


def digest(model) -> str:
    weights = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        if param.requires_grad:
            weights.update(name.encode())
            weights.update(param.detach().float().cpu().numpy().tobytes())
    return weights.hexdigest()


def recording(build_trainer):
    """``build_trainer`` whose trainer also records its weights' digests when training starts and ends."""
    from transformers import TrainerCallback

    def build(*args, **kwargs):
        trainer = build_trainer(*args, **kwargs)

        class Record(TrainerCallback):
            def on_train_begin(self, args, state, control, **unused):
                self.before = digest(trainer.accelerator.unwrap_model(trainer.model))

            def on_train_end(self, args, state, control, **unused):
                accelerator = trainer.accelerator
                record = {
                    "processes": accelerator.num_processes,
                    "wrapper": type(trainer.model_wrapped).__name__,
                    "before": self.before,
                    "after": digest(accelerator.unwrap_model(trainer.model)),
                }
                DIGESTS.mkdir(parents=True, exist_ok=True)
                (DIGESTS / f"{stage}-rank-{accelerator.process_index}.json").write_text(json.dumps(record))

        trainer.add_callback(Record())
        return trainer

    return build


def varied_outcome(score_episode):
    """tiny's random model earns the same reward in every episode, which leaves GRPO nothing to learn.
    Pay a pseudo-random outcome instead (a checksum of the episode), so the gradients are not zero."""

    def score(row, *args, **kwargs):
        reward = score_episode(row, *args, **kwargs)
        reward.components["outcome"] = zlib.crc32(json.dumps(row["messages"]).encode()) % 1000 / 1000
        return reward

    return score


labkit.sft.build_trainer = recording(labkit.sft.build_trainer)
labkit.rl.build_trainer = recording(labkit.rl.build_trainer)
labkit.rl.score_episode = varied_outcome(labkit.rl.score_episode)


def commands(argv: list[str]) -> list[list[str]]:
    split, current = [], []
    for arg in argv:
        if arg == THEN:
            split.append(current)
            current = []
        else:
            current.append(arg)
    return [*split, current]


if __name__ == "__main__":
    for command in commands(sys.argv[1:]):
        stage = command[0]
        if main(command):
            sys.exit(f"labkit {stage} failed")
