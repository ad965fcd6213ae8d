"""The shared training loop weighs every token (or sequence) of an optimizer step alike, whatever micro-batch
and data-parallel rank it lands in: one step's gradient is the gradient of the single big batch.

Real DeepSpeed (ZeRO-0) and a real gloo all-reduce, in spawned processes of 1 and 2 ranks. DeepSpeed's CPU
accelerator reduces no float64 gradients, so the model is fp32 and the reference is its float64 copy; the
weighting itself is checked in float64 against the same reference."""

import socket

import pytest
import torch
import torch.multiprocessing as mp

from rlhf_ray.algorithms import ppo_policy_loss
from rlhf_ray.config.schema import OptimizationConfig
from rlhf_ray.data import SequenceBatch, pack_sequences
from rlhf_ray.distributed.process_group import init_process_group
from rlhf_ray.engines.deepspeed_engine import TrainingEngine
from rlhf_ray.models import load_causal_lm
from rlhf_ray.models.forward import response_logprobs
from rlhf_ray.workers.base import response_units
from rlhf_ray.workers.training_loop import _gradient_weights, train_on_batch
from tests.support.tiny_roles import TINY_MODELS

SAMPLES, MICRO_BATCH, MAX_LENGTH = 16, 2, 24


def step_batch() -> SequenceBatch:
    """Responses of 24 tokens and of 1-3 tokens, so micro-batches hold very different token counts."""
    gen = torch.Generator().manual_seed(0)
    lengths = [MAX_LENGTH if i % 2 else 1 + i % 3 for i in range(SAMPLES)]
    prompts = [
        torch.randint(3, TINY_MODELS["vocab_size"], (2 + i % 4,), generator=gen).tolist() for i in range(SAMPLES)
    ]
    responses = [torch.randint(3, TINY_MODELS["vocab_size"], (n,), generator=gen).tolist() for n in lengths]
    batch = pack_sequences(prompts, responses, pad_token_id=0)
    mask = batch.response_mask.double()
    return batch.with_fields(
        old_logprobs=(torch.randn(mask.shape, generator=gen, dtype=torch.float64) * 0.1 - 6.0) * mask,
        advantages=torch.randn(mask.shape, generator=gen, dtype=torch.float64) * mask,
    )


def policy_loss(model: torch.nn.Module, batch: SequenceBatch, aggregation: str) -> torch.Tensor:
    logprobs = response_logprobs(model, batch, temperature=0.7)
    loss, _ = ppo_policy_loss(
        logprobs, batch.old_logprobs, batch.advantages, batch.response_mask, aggregation=aggregation,
        max_length=MAX_LENGTH,
    )  # fmt: skip
    return loss


def fp32_policy(model_path: str) -> torch.nn.Module:
    return load_causal_lm(model_path, "float32")


def run_rank(rank: int, world_size: int, port: int, model_path: str, aggregation: str, out: str) -> None:
    torch.set_num_threads(1)
    init_process_group(rank, world_size, "127.0.0.1", port, "gloo", 120)
    train = OptimizationConfig(
        zero_stage=0, precision="fp32", lr=1e-3, micro_batch_size=MICRO_BATCH, global_batch_size=SAMPLES, grad_clip=None
    )
    engine = TrainingEngine(lambda: fp32_policy(model_path), train, world_size, total_steps=1)
    grads: dict[str, torch.Tensor] = {}

    def keep_gradients(optimizer, args, kwargs):
        grads.update({name: p.grad.detach().clone() for name, p in engine.module.named_parameters()})

    engine.optimizer.register_step_pre_hook(keep_gradients)
    shard = step_batch().chunks([SAMPLES // world_size] * world_size)[rank]
    train_on_batch(
        engine,
        shard,
        lambda model, micro: (policy_loss(model, micro, aggregation), {}),
        MICRO_BATCH,
        epochs=1,
        seed=rank,
        units=response_units(aggregation),
    )
    if rank == 0:
        torch.save(grads, out)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean_token_mean"])
@pytest.mark.parametrize("world_size", [1, 2])
def test_one_step_gradient_is_the_single_big_batch_gradient(tiny_paths, tmp_path, world_size, aggregation):
    out = str(tmp_path / "grads.pt")
    args = (world_size, free_port(), tiny_paths.policy, aggregation, out)
    mp.start_processes(run_rank, args=args, nprocs=world_size, start_method="spawn")
    stepped = torch.load(out)

    model = fp32_policy(tiny_paths.policy).double()
    policy_loss(model, step_batch(), aggregation).backward()
    expected = {name: p.grad for name, p in model.named_parameters()}

    assert stepped.keys() == expected.keys()
    for name, grad in expected.items():
        # fp32 accumulation: about 2e-6 of the largest entry; the old per-micro-batch mean was off by 400%.
        error = (stepped[name].double() - grad).abs().max() / grad.abs().max()
        assert error < 1e-5, f"{name}: gradient off by {error:.2e} of its largest entry"
    assert sum(float(g.abs().sum()) for g in expected.values()) > 0


@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"])
def test_the_weighted_micro_batch_gradients_add_up_to_the_big_batch_gradient_in_float64(tiny_paths, aggregation):
    """The loop's weights, with DeepSpeed's division by the accumulation steps, on 1 rank in float64."""
    model = fp32_policy(tiny_paths.policy).double()
    batch = step_batch()
    micros = batch.chunks([MICRO_BATCH] * (SAMPLES // MICRO_BATCH))
    weights = _gradient_weights(micros, response_units(aggregation), torch.device("cpu"))
    for micro, weight in zip(micros, weights, strict=True):
        (policy_loss(model, micro, aggregation) * weight / len(micros)).backward()
    accumulated = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    policy_loss(model, batch, aggregation).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(accumulated[name], p.grad, rtol=1e-6, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")
