"""Statistics over the valid (mask = 1) positions of a tensor; masked positions never contribute, even if NaN."""

import torch

from rlhf_ray.algorithms._shapes import require_same_shape


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    require_same_shape(x=x, mask=mask)
    kept = torch.where(mask.bool(), x, torch.zeros_like(x))
    return kept.sum() if dim is None else kept.sum(dim)


def masked_count(mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    valid = mask.bool()
    return valid.sum() if dim is None else valid.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean over valid positions; 0 (not NaN) where nothing is valid."""
    count = masked_count(mask, dim)
    return masked_sum(x, mask, dim) / count.clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of all valid positions (a scalar); 0 when there are too few of them to measure a spread."""
    count = masked_count(mask)
    squared_deviation = (x - masked_mean(x, mask)) ** 2
    denominator = count - 1 if unbiased else count
    return masked_sum(squared_deviation, mask) / denominator.clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Scale valid positions to unit variance (and zero mean if shift_mean); masked positions become 0."""
    mean = masked_mean(x, mask)
    whitened = (x - mean) * torch.rsqrt(masked_var(x, mask) + eps)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask.bool(), whitened, torch.zeros_like(whitened))


def last_token_mask(mask: torch.Tensor) -> torch.Tensor:
    """Bool [B, T] marking each row's last valid position; rows with no valid position get none."""
    valid = mask.bool()
    positions = torch.arange(valid.shape[-1], device=valid.device).expand_as(valid)
    last_position = torch.where(valid, positions, -1).max(dim=-1, keepdim=True).values
    return valid & (positions == last_position)
