"""Seeded random inputs shared by the tests of the math (the root conftest makes them fixtures everywhere)."""

import pytest
import torch


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def randn(gen):
    """randn(*shape, scale=1.0) -> float64 tensor drawn from the seeded generator."""

    def draw(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return scale * torch.randn(*shape, generator=gen, dtype=torch.float64)

    return draw


@pytest.fixture
def random_mask(gen):
    """random_mask(B, T, scattered=False) -> bool [B, T].

    Right-padded rows of random lengths, where row 0 is empty, row 1 has one token and row 2 is full
    (when B allows). With scattered=True the valid positions are random instead (holes in the middle),
    keeping the same first three rows.
    """

    def draw(batch_size: int, length: int, scattered: bool = False) -> torch.Tensor:
        if scattered:
            mask = torch.rand(batch_size, length, generator=gen) < 0.6
        else:
            lengths = torch.randint(0, length + 1, (batch_size,), generator=gen)
            mask = torch.arange(length) < lengths.unsqueeze(-1)
        edge_rows = [
            torch.zeros(length, dtype=torch.bool),
            torch.arange(length) == 0,
            torch.ones(length, dtype=torch.bool),
        ]
        for row, edge in enumerate(edge_rows[:batch_size]):
            mask[row] = edge
        return mask

    return draw
