"""The one micro-batch / gradient-accumulation loop every trained role uses (policy, critic, and the
SFT, reward-model and DPO trainers)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist

from rlhf_ray.data import SequenceBatch
from rlhf_ray.engines.deepspeed_engine import TrainingEngine

LossFn = Callable[[torch.nn.Module, SequenceBatch], tuple[torch.Tensor, dict[str, torch.Tensor]]]
LossUnits = Callable[[SequenceBatch], float]
"""How many things a micro-batch's loss is the mean of (its valid tokens, its sequences, its pairs' weights)."""


def train_on_batch(
    engine: TrainingEngine,
    batch: SequenceBatch,
    loss_fn: LossFn,
    micro_batch_size: int,
    epochs: int,
    seed: int,
    units: LossUnits | None = None,
) -> dict[str, float]:
    """``epochs`` passes over this rank's ``batch`` in shuffled micro-batches; the optimizer steps every
    ``engine.accumulation_steps`` micro-batches. Returns the mean of every reported statistic.

    ``loss_fn`` returns the mean loss of a micro-batch over its ``units``. Each micro-batch's gradient is
    weighted by its share of the units of the whole optimizer step, over every micro-batch and every
    data-parallel rank, so the step's gradient is that of the mean over all of them: a token of a short
    micro-batch weighs what a token of a long one does. Without ``units`` every micro-batch weighs the
    same (a mean over a fixed number of samples)."""
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
        for step_start in range(0, len(batch), per_step):
            micros = [
                batch.select(order[start : start + micro_batch_size])
                for start in range(step_start, step_start + per_step, micro_batch_size)
            ]
            for micro, weight in zip(micros, _gradient_weights(micros, units, engine.device), strict=True):
                loss, stats = loss_fn(engine.training_model, micro.to(engine.device))
                engine.backward(loss * weight)
                step = engine.step()
                record("loss", loss.item())
                for name, value in stats.items():
                    record(name, float(value))
                if step is not None:
                    record("grad_norm", step.grad_norm)
                    record("lr", step.lr)
    return {name: sums[name] / counts[name] for name in sums}


def _gradient_weights(micros: Sequence[SequenceBatch], units: LossUnits | None, device: torch.device) -> list[float]:
    """Factors on the micro-batch losses of one optimizer step such that, after DeepSpeed divides by the
    accumulation steps and averages over the data-parallel ranks, the gradient is that of the mean over
    the step's units: micro-batch m with u_m of the step's U units gets u_m * steps * ranks / U."""
    if units is None:
        return [1.0] * len(micros)
    counts = [units(micro) for micro in micros]
    ranks = dist.get_world_size() if dist.is_initialized() else 1
    total = torch.tensor(float(sum(counts)), dtype=torch.float64, device=device)
    if ranks > 1:
        dist.all_reduce(total)
    if total.item() == 0:
        return [0.0] * len(micros)
    scale = len(micros) * ranks / total.item()
    return [count * scale for count in counts]
