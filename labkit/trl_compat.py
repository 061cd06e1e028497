"""The one place that knows TRL's private API.

The lab subclasses TRL's trainers and reaches into names TRL does not promise to
keep. Every such name is spelled here and nowhere else in labkit, and
``tests/test_trl_compat.py`` checks each one against the installed TRL, so an
upgrade that moves one fails there, by name, instead of deep inside a training run.

Checked against TRL 1.15.0 (``CHECKED_TRL_VERSION``), the version pyproject.toml
pins (``trl==1.15.0``). The private names, and what the lab uses them for:

    trl.trainer.utils._ChunkedLogProbFunction
        None where TRL's Triton kernels failed to import: whether TRL's fused
        LM head can run (:func:`fused_logprob_kernel_available`).
    GRPOTrainer._generate_and_score_completions(inputs)
        TRL's per-batch step (roll out, score, advantages); :class:`GRPOBatchHooks`
        runs the lab's code before and after it.
    GRPOTrainer._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep,
                                                   batch_size, compute_entropy)
        the policy's per-token log-probs: read by :func:`per_token_logps`, and
        replaced by :class:`GRPOLogProbsFromLogits` where the fused head cannot run.
    GRPOTrainer._log_metric(name, value)
        a scalar TRL averages over processes and logs next to its own (:func:`log_metric`).
    SFTTrainer._metrics[mode][name]
        the lists of values SFTTrainer.log averages into each log line (:func:`record_metric`).

Not private, but not exported from ``trl`` either, so checked too:

    trl.trainer.utils.selective_log_softmax_and_entropy(logits, index, entropy_requires_grad, temperature)
        TRL's own log-softmax and entropy, used by :class:`GRPOLogProbsFromLogits`.
"""

from __future__ import annotations

CHECKED_TRL_VERSION = "1.15.0"


def fused_logprob_kernel_available() -> bool:
    """Whether TRL's fused LM head (Triton kernels) can score tokens here: it needs a GPU and Triton,
    which the CPU torch wheel lacks."""
    import torch
    from trl.trainer import utils as trl_utils

    return torch.cuda.is_available() and trl_utils._ChunkedLogProbFunction is not None


def log_metric(trainer, name: str, value: float) -> None:
    """Log a scalar with GRPOTrainer's own metrics. TRL averages it over every process's values, not just
    this one's; call it during the batch's rollout, before TRL flushes its metrics."""
    trainer._log_metric(name, value)


def record_metric(trainer, mode: str, name: str, value: float) -> None:
    """Add a value to a TRL trainer's metric ``name``; the trainer logs the mean of its values at its next
    log, for ``mode`` "train" or "eval"."""
    trainer._metrics[mode][name].append(value)


def per_token_logps(trainer, model, input_ids, attention_mask, logits_to_keep: int):
    """The log-probs GRPOTrainer trains on: one per token of the last ``logits_to_keep`` tokens of each row."""
    logps, _, _ = trainer._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep)
    return logps


class GRPOBatchHooks:
    """GRPOTrainer mixin: ``on_batch(inputs)`` runs before TRL generates and scores a batch, and
    ``on_scored_batch(output)`` after, with TRL's output (``advantages`` included). Put it before
    GRPOTrainer among the bases."""

    def on_batch(self, inputs: list[dict]) -> None:
        pass

    def on_scored_batch(self, output: dict) -> None:
        pass

    def _generate_and_score_completions(self, inputs):
        self.on_batch(inputs)
        output = super()._generate_and_score_completions(inputs)
        self.on_scored_batch(output)
        return output


class GRPOLogProbsFromLogits:
    """GRPOTrainer mixin that computes per-token log-probs from the model's logits, for where the fused LM
    head cannot run (:func:`fused_logprob_kernel_available`), with TRL's own ``selective_log_softmax_and_entropy``.
    Put it before GRPOTrainer among the bases."""

    def _get_per_token_logps_and_entropies(
        self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, compute_entropy=False, **unused
    ):
        import torch
        from trl.trainer.utils import selective_log_softmax_and_entropy

        batch_size = batch_size or input_ids.size(0)
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):
            ids, mask = input_ids[start : start + batch_size], attention_mask[start : start + batch_size]
            with self.accelerator.autocast():
                logits = model(
                    input_ids=ids, attention_mask=mask, logits_to_keep=logits_to_keep + 1, use_cache=False
                ).logits
            chosen, entropy = selective_log_softmax_and_entropy(
                logits[:, :-1].float(),
                ids[:, -logits_to_keep:],
                entropy_requires_grad=False,
                temperature=self.temperature,
            )
            logps.append(chosen)
            entropies.append(entropy)
        # TRL's third value is the MoE load-balancing loss, which the lab's dense models do not have.
        return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None), None
