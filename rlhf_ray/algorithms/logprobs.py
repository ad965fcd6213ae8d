"""Per-token log-probabilities and entropies from language-model logits."""

import torch


def _log_softmax(logits: torch.Tensor) -> torch.Tensor:
    # A softmax over a large vocabulary in bf16/fp16 loses most of the precision of the result.
    return torch.log_softmax(logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits, dim=-1)


def _of_labels(log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if log_probs.shape[:-1] != labels.shape:
        raise ValueError(
            f"expected logits [B, T, V] and labels [B, T], got {tuple(log_probs.shape)} and {tuple(labels.shape)}; "
            "shift labels to align with the logits that predict them"
        )
    return log_probs.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(labels) for logits [B, T, V] and labels [B, T] -> [B, T]."""
    return _of_labels(_log_softmax(logits), labels)


def logprobs_and_entropy_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(labels) [B, T] as ``logprobs_from_logits``, and the entropy [B, T] of each next-token
    distribution, from one log-softmax."""
    log_probs = _log_softmax(logits)
    return _of_labels(log_probs, labels), -(log_probs.exp() * log_probs).sum(-1)
