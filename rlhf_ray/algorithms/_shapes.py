"""Shape checks shared by the algorithm functions, so a wrong shape fails loudly instead of broadcasting."""

import torch


def require_same_shape(**tensors: torch.Tensor) -> None:
    shapes = {name: tuple(tensor.shape) for name, tensor in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"expected tensors of one shape, got {shapes}")


def require_scores_per_row(scores: torch.Tensor, mask: torch.Tensor) -> None:
    if scores.dim() != 1 or mask.dim() != 2 or scores.shape[0] != mask.shape[0]:
        raise ValueError(
            f"expected scores [B] and mask [B, T], got scores {tuple(scores.shape)} and mask "
            f"{tuple(mask.shape)}; pass one scalar score per response"
        )
