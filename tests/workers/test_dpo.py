"""The DPO rank's loss: ``dpo_loss`` of the policy's and the frozen reference's log-probs of each pair's
responses, checked against log-probs summed token by token over each unpadded sequence in float64."""

import math
import socket

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.data.preferences import PreferencePair, preference_batch
from rlhf_ray.distributed.process_group import init_process_group
from rlhf_ray.models import load_causal_lm
from rlhf_ray.workers.dpo import DPOWorker, dpo_objective
from tests.support.tiny_roles import TINY_MODELS, role_config

PAIRS, BETA = 6, 0.5


def tiny_pairs() -> list[PreferencePair]:
    """Prompts of 2-5 tokens, chosen and rejected responses of 1-6 tokens: every padding occurs."""
    gen = torch.Generator().manual_seed(0)

    def tokens(low: int, high: int) -> list[int]:
        length = int(torch.randint(low, high + 1, (1,), generator=gen))
        return torch.randint(3, TINY_MODELS["vocab_size"], (length,), generator=gen).tolist()

    return [PreferencePair(tokens(2, 5), tokens(1, 6), tokens(1, 6), None) for _ in range(PAIRS)]


@torch.no_grad()
def summed_logprob(model: torch.nn.Module, prompt: list[int], response: list[int]) -> float:
    """log p(response | prompt), token by token, from one unpadded forward pass."""
    logits = model(torch.tensor([prompt + response])).logits[0].double()
    return sum(float(F.log_softmax(logits[len(prompt) + t - 1], -1)[token]) for t, token in enumerate(response))


def hand_logprobs(policy: torch.nn.Module, reference: torch.nn.Module) -> torch.Tensor:
    """[N, 4]: policy chosen, policy rejected, reference chosen, reference rejected."""
    rows = [
        [
            summed_logprob(model, p.prompt_ids, r)
            for model in (policy, reference)
            for r in (p.chosen_ids, p.rejected_ids)
        ]
        for p in tiny_pairs()
    ]
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize(("loss", "label_smoothing"), [("dpo", 0.0), ("cdpo", 0.2), ("ipo", 0.0)])
def test_the_objective_is_the_named_loss_and_the_implicit_rewards(tmp_path, loss, label_smoothing):
    cfg = role_config(tmp_path, dpo={"loss": loss, "beta": BETA, "label_smoothing": label_smoothing})
    logprobs = torch.tensor([[-3.0, -5.0, -4.0, -4.5], [-7.0, -2.0, -6.0, -2.5], [-1.0, -1.5, -1.0, -1.5]])
    value, stats = dpo_objective(logprobs, cfg.dpo)

    ratios = [(pc - rc) - (pr - rr) for pc, pr, rc, rr in logprobs.tolist()]  # 1.5, -1.5, 0
    if loss == "ipo":
        expected = sum((r - 1 / (2 * BETA)) ** 2 for r in ratios) / 3
    else:
        log_sigmoid = lambda x: -math.log1p(math.exp(-x))  # noqa: E731
        e = label_smoothing
        expected = sum(-(1 - e) * log_sigmoid(BETA * r) - e * log_sigmoid(-BETA * r) for r in ratios) / 3
    assert float(value) == pytest.approx(expected, rel=1e-6)
    assert float(stats["reward_accuracy"]) == pytest.approx(1 / 3)  # the tie at 0 is not ranked right
    assert float(stats["reward_margin"]) == pytest.approx(BETA * sum(ratios) / 3)
    assert float(stats["logps_chosen"]) == pytest.approx((-3.0 - 7.0 - 1.0) / 3)
    assert float(stats["logps_rejected"]) == pytest.approx((-5.0 - 2.0 - 1.5) / 3)


def run_rank(rank: int, port: int, tiny_dir: str, model_path: str, out: str) -> None:
    """One DPO rank (DeepSpeed ZeRO-0, fp32): the policy moved away from its reference, then one update
    on every pair at once, so that its loss is that of the moved policy."""
    torch.set_num_threads(1)
    init_process_group(rank, 1, "127.0.0.1", port, "gloo", 120)
    train = {"zero_stage": 0, "precision": "fp32", "micro_batch_size": PAIRS, "global_batch_size": PAIRS}
    cfg = role_config(tiny_dir, dpo={"beta": BETA, "train": train})
    worker = DPOWorker(cfg, rank, 1, DeviceProfile("cpu", bf16=False))
    worker.setup(model_path, 1)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in worker.engine.module.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * 0.05)
    moved = {name: p.detach().clone() for name, p in worker.engine.module.state_dict().items()}
    pairs = preference_batch(tiny_pairs(), pad_token_id=0)
    logprobs = worker.pair_logprobs(pairs)
    metrics = worker.update(pairs)
    torch.save({"moved": moved, "logprobs": logprobs, "metrics": metrics}, out)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_the_ranks_loss_is_dpo_loss_of_the_policy_and_its_frozen_starting_copy(tiny_dir, tiny_paths, tmp_path):
    out = str(tmp_path / "rank.pt")
    mp.start_processes(
        run_rank, args=(free_port(), str(tiny_dir), tiny_paths.policy, out), nprocs=1, start_method="spawn"
    )
    result = torch.load(out)

    reference = load_causal_lm(tiny_paths.policy, "float32").double().eval()
    policy = load_causal_lm(tiny_paths.policy, "float32").eval()
    policy.load_state_dict(result["moved"])
    expected = hand_logprobs(policy.double(), reference)
    torch.testing.assert_close(result["logprobs"].double(), expected, rtol=1e-4, atol=1e-4)

    chosen_ratio = expected[:, 0] - expected[:, 2]
    rejected_ratio = expected[:, 1] - expected[:, 3]
    expected_loss = float(-F.logsigmoid(BETA * (chosen_ratio - rejected_ratio)).mean())
    metrics = result["metrics"]
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-4)
    assert metrics["reward_margin"] == pytest.approx(float(BETA * (chosen_ratio - rejected_ratio).mean()), abs=1e-4)
    assert metrics["logps_chosen"] == pytest.approx(float(expected[:, 0].mean()), rel=1e-4)
    assert abs(expected_loss - math.log(2)) > 0.05, "the moved policy must differ from its reference"
