"""Per-token log-probabilities and entropies from language-model logits."""

import torch


def _at_least_float32(logits: torch.Tensor) -> torch.Tensor:
    # A softmax over a large vocabulary in bf16/fp16 loses most of the precision of the result.
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(labels) for logits [B, T, V] and labels [B, T] -> [B, T]."""
    if logits.shape[:-1] != labels.shape:
        raise ValueError(
            f"expected logits [B, T, V] and labels [B, T], got {tuple(logits.shape)} and {tuple(labels.shape)}; "
            "shift labels to align with the logits that predict them"
        )
    log_probs = torch.log_softmax(_at_least_float32(logits), dim=-1)
    return log_probs.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the next-token distribution for logits [B, T, V] -> [B, T]."""
    log_probs = torch.log_softmax(_at_least_float32(logits), dim=-1)
    return -(log_probs.exp() * log_probs).sum(-1)
