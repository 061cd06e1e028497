"""python -m bench [NAME ...]: run the named benchmarks (all by default) and print their ratios."""

import sys

from bench import (
    env_throughput,
    evaluation_engines,
    grpo_step,
    rollout_engines,
    rollout_throughput,
    sft_throughput,
    teacher_throughput,
    viewer_latency,
)

BENCHES = {
    "env": env_throughput,
    "teach": teacher_throughput,
    "rollout": rollout_throughput,
    "engines": rollout_engines,
    "evaluation": evaluation_engines,
    "sft": sft_throughput,
    "grpo": grpo_step,
    "view": viewer_latency,
}


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    for name in names or BENCHES:
        module = BENCHES[name]
        print(module.report(module.run()))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
