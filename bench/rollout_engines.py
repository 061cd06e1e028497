"""The two rollout engines on the embedded SmolLM2-135M (CPU): in-process ``generate`` against vLLM's CPU build.

Every arm plays the same seen-split episodes through :func:`labkit.rollout.rollout_batch`
(same budgets, same parsing, same environment), sampling at temperature 1 so
every arm generates a similar number of tokens; only who computes the next tokens
differs. The baseline is the in-process engine at the evaluation's settings (fp32,
batch 16). Decoding is memory-bound: each decode step reads every weight once,
whatever the batch, so a batch of B rows can make at most B x bandwidth / weight
bytes tokens per second. The bandwidth is measured in the same run (a sum over a
1 GiB tensor, on one thread and on all), and each arm is reported as a share of
its bound.

Run: python -m bench engines   (needs `make vllm`)
"""

from __future__ import annotations

import os
import time

from labkit.engine import VLLMConfig, VLLMEngine, vllm_missing_reason
from labkit.env import EnvConfig
from labkit.models import LoadedModel, load_model
from labkit.protocol import END_OF_TURN
from labkit.rollout import GenerationConfig, ServedModel, rollout_batch
from labkit.tasks import generate_tasks
from labkit.tools import load_catalog


def read_bandwidth(threads: int, gib: float = 1.0, repeats: int = 5) -> float:
    """Bytes per second torch reads from memory with this many threads (best of ``repeats`` sums)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    data = torch.ones(int(gib * 2**30 / 4), dtype=torch.float32)
    data.sum()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        data.sum()
        best = min(best, time.perf_counter() - start)
    torch.set_num_threads(before)
    return data.numel() * 4 / best


def _arm(
    name: str, model, loaded: LoadedModel, tasks, catalog, env_config, gen, weight_bytes: int, bandwidth: float
) -> dict:
    start = time.perf_counter()
    rollouts = rollout_batch(model, loaded.tokenizer, tasks, catalog, env_config, gen, progress=False)
    seconds = time.perf_counter() - start
    tokens = sum(r.generated_tokens for r in rollouts)
    bound = gen.batch_size * bandwidth / weight_bytes
    return {
        "arm": name,
        "batch": gen.batch_size,
        "seconds": seconds,
        "tokens": tokens,
        "tokens_per_s": tokens / seconds,
        "bound": bound,
        "share": tokens / seconds / bound,
    }


def run(n_tasks: int = 48, max_new_tokens: int = 64, max_turns: int = 3) -> dict:
    import torch

    missing = vllm_missing_reason()
    if missing:
        raise SystemExit(f"bench engines: {missing}")
    catalog = load_catalog()
    tasks = generate_tasks("seen", n_tasks, seed=0, catalog=catalog)
    env_config = EnvConfig(max_turns=max_turns)
    cores = len(os.sched_getaffinity(0))
    bandwidth = {"1 thread": read_bandwidth(1), f"{cores} threads": read_bandwidth(cores)}
    best = max(bandwidth.values())
    fp32 = load_model("smollm2-135m")
    n_weights = sum(p.numel() for p in fp32.model.parameters())
    arms = []
    for batch in (16, 48):
        gen = GenerationConfig(max_new_tokens=max_new_tokens, temperature=1.0, batch_size=batch)
        arms.append(
            _arm(
                "in-process, fp32 (baseline at 16)",
                fp32.model,
                fp32,
                tasks,
                catalog,
                env_config,
                gen,
                4 * n_weights,
                best,
            )
        )
    bf16 = load_model("smollm2-135m", dtype=torch.bfloat16)
    gen48 = GenerationConfig(max_new_tokens=max_new_tokens, temperature=1.0, batch_size=48)
    arms.append(_arm("in-process, bf16", bf16.model, bf16, tasks, catalog, env_config, gen48, 2 * n_weights, best))
    del bf16
    started = time.perf_counter()
    with VLLMEngine(fp32, VLLMConfig()) as engine:
        start_seconds = time.perf_counter() - started
        served = ServedModel(engine, fp32.tokenizer.convert_tokens_to_ids(END_OF_TURN))
        for batch in (16, 48):
            gen = GenerationConfig(max_new_tokens=max_new_tokens, temperature=1.0, batch_size=batch)
            arms.append(_arm("vLLM, bf16", served, fp32, tasks, catalog, env_config, gen, 2 * n_weights, best))
    baseline = arms[0]["tokens_per_s"]
    for a in arms:
        a["ratio"] = a["tokens_per_s"] / baseline
    return {
        "episodes": n_tasks,
        "max_new_tokens": max_new_tokens,
        "max_turns": max_turns,
        "arms": arms,
        "bandwidth": bandwidth,
        "vllm_start_s": start_seconds,
        "load": os.getloadavg()[0],
        "cores": cores,
        "weights": n_weights,
    }


def report(results: dict) -> str:
    bandwidth = ", ".join(f"{name} {value / 1e9:.1f} GB/s" for name, value in results["bandwidth"].items())
    lines = [
        f"## Rollout engines: SmolLM2-135M ({results['weights'] / 1e6:.1f}M "
        f"weights), {results['episodes']} seen-split episodes, "
        f"temperature 1, max_new_tokens={results['max_new_tokens']}, max_turns={results['max_turns']}",
        f"{results['cores']} cores, load average {results['load']:.1f} at the end; memory read bandwidth: {bandwidth}",
        "",
        "| engine | batch | seconds | generated tokens | tokens/s | "
        "x baseline | bandwidth bound (tokens/s) | share of bound |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for a in results["arms"]:
        lines.append(
            f"| {a['arm']} | {a['batch']} | {a['seconds']:.1f} | "
            f"{a['tokens']} | {a['tokens_per_s']:.1f} | {a['ratio']:.2f}x "
            f"| {a['bound']:.0f} | {100 * a['share']:.0f}% |"
        )
    lines += [
        "",
        f"vLLM server start (health check passed): {results['vllm_start_s']:.0f} s, "
        "torch.compile's cache reused where present.",
        "The bound: batch x best measured bandwidth / weight bytes "
        "(fp32 4, bf16 2 bytes a weight); it ignores the KV cache.",
        "command: python -m bench engines",
    ]
    return "\n".join(lines)
