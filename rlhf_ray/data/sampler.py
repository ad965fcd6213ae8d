"""Which prompts each iteration draws: seeded shuffles per epoch, resumable from its state."""

from __future__ import annotations

import torch


class PromptSampler:
    """Draws ``batch_size`` indices at a time from ``size`` rows (prompts, demonstrations, pairs), epoch
    after epoch, reshuffling each epoch with ``seed + epoch``. The last incomplete batch of an epoch is
    dropped (every row of a shuffle still gets its turn over the epochs). ``batch_field`` names the
    setting of the batch size in errors."""

    def __init__(
        self, size: int, batch_size: int, seed: int, shuffle: bool, batch_field: str = "data.prompts_per_step"
    ):
        if batch_size > size:
            raise ValueError(f"{batch_field} is {batch_size} but the dataset has only {size} usable rows")
        self.size, self.batch_size, self.seed, self.shuffle = size, batch_size, seed, shuffle
        self.epoch = 0
        self.position = 0

    @property
    def batches_per_epoch(self) -> int:
        return self.size // self.batch_size

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()

    def next_batch(self) -> list[int]:
        if self.position + self.batch_size > self.size:
            self.epoch += 1
            self.position = 0
        indices = self._order()[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return indices

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = state["epoch"], state["position"]
