"""The one micro-batch / gradient-accumulation loop every trained role uses (policy, critic, and the
SFT, reward-model and DPO trainers)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import torch

from rlhf_ray.data import SequenceBatch
from rlhf_ray.engines.deepspeed_engine import TrainingEngine

LossFn = Callable[[torch.nn.Module, SequenceBatch], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def train_on_batch(
    engine: TrainingEngine, batch: SequenceBatch, loss_fn: LossFn, micro_batch_size: int, epochs: int, seed: int
) -> dict[str, float]:
    """``epochs`` passes over this rank's ``batch`` in shuffled micro-batches; the optimizer steps every
    ``engine.accumulation_steps`` micro-batches. Returns the mean of every reported statistic."""
    per_step = micro_batch_size * engine.accumulation_steps
    if len(batch) % per_step:
        raise ValueError(
            f"this rank holds {len(batch)} samples, not a multiple of micro_batch_size x accumulation steps "
            f"= {micro_batch_size} x {engine.accumulation_steps}: every optimizer step must be complete"
        )
    engine.train_mode()
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)

    def record(name: str, value: float) -> None:
        sums[name] += value
        counts[name] += 1

    for epoch in range(epochs):
        order = torch.randperm(len(batch), generator=torch.Generator().manual_seed(seed + epoch))
        for start in range(0, len(batch), micro_batch_size):
            micro = batch.select(order[start : start + micro_batch_size]).to(engine.device)
            loss, stats = loss_fn(engine.training_model, micro)
            engine.backward(loss)
            step = engine.step()
            record("loss", loss.item())
            for name, value in stats.items():
                record(name, float(value))
            if step is not None:
                record("grad_norm", step.grad_norm)
                record("lr", step.lr)
    return {name: sums[name] / counts[name] for name in sums}
