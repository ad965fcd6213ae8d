"""Role groups on a real local Ray cluster with DeepSpeed on gloo: the four roles, sharding, updates."""

import pytest
import ray
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoModelForTokenClassification

from rlhf_ray.algorithms import ppo_policy_loss
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.placement_plan import plan_placement
from rlhf_ray.data import SequenceBatch
from rlhf_ray.distributed.placement import release, reserve
from rlhf_ray.distributed.role_group import RoleGroup, share_cores
from rlhf_ray.workers import PolicyWorker
from rlhf_ray.workers.base import available_cores
from rlhf_ray.workers.groups import start_role_groups
from tests.support.tiny_roles import TINY_MODELS, policy_training, random_batch, role_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("local_ray")]
CPU = DeviceProfile("cpu")
EXACT = 1e-5  # fp32: sharded and single-process forwards must agree to rounding


def unpadded_rows(batch: SequenceBatch):
    """(token ids, prompt length, response length) of each row without padding."""
    prompt_len = batch.sequences.shape[1] - batch.response_length
    for row in range(len(batch)):
        ids = batch.sequences[row][batch.attention_mask[row].bool()]
        response_len = int(batch.response_mask[row].sum())
        yield ids.unsqueeze(0), prompt_len - int((batch.attention_mask[row, :prompt_len] == 0).sum()), response_len


@torch.no_grad()
def reference_logprobs(path, batch: SequenceBatch) -> torch.Tensor:
    """Log-probs from a plain transformers forward of each unpadded sequence on its own."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    out = torch.zeros(batch.response_mask.shape)
    for row, (ids, prompt_len, response_len) in enumerate(unpadded_rows(batch)):
        logits = model(ids).logits[0]
        logprobs = torch.log_softmax(logits, -1)
        for t in range(response_len):
            out[row, t] = logprobs[prompt_len - 1 + t, ids[0, prompt_len + t]]
    return out


@torch.no_grad()
def reference_values(path, batch: SequenceBatch) -> torch.Tensor:
    model = AutoModelForTokenClassification.from_pretrained(path, dtype=torch.float32, num_labels=1)
    out = torch.zeros(batch.response_mask.shape)
    for row, (ids, prompt_len, response_len) in enumerate(unpadded_rows(batch)):
        values = model(ids).logits[0, :, 0]
        out[row, :response_len] = values[prompt_len - 1 : prompt_len - 1 + response_len]
    return out


@torch.no_grad()
def reference_scores(path, batch: SequenceBatch) -> torch.Tensor:
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32, num_labels=1)
    return torch.tensor([model(ids).logits[0, 0].item() for ids, _, _ in unpadded_rows(batch)])


@pytest.fixture(scope="module")
def four_roles(tiny_dir, tiny_paths):
    """Policy (2 ranks, ZeRO-2) colocated with the reference (2 ranks, ZeRO-3), both in one process per
    rank (two DeepSpeed engines in one process); critic (2 ranks, ZeRO-3) and reward model (1 rank) on
    their own."""
    cfg = role_config(
        tiny_dir,
        models={
            "tiny": {**TINY_MODELS, "output_dir": str(tiny_dir)},
            "reference": {"dtype": "float32", "zero_stage": 3},
            "reward": {"dtype": "float32"},
        },
        train={
            "forward_micro_batch_size": 3,
            "policy": {"precision": "fp32", "zero_stage": 2, "micro_batch_size": 2, "global_batch_size": 8, "lr": 1e-3},
            "critic": {"precision": "fp32", "zero_stage": 3, "micro_batch_size": 2, "global_batch_size": 8, "lr": 1e-3},
        },
        resources={
            "device": "cpu",
            "policy": {"gpus_per_node": 2},
            "reference": {"gpus_per_node": 2},
            "critic": {"gpus_per_node": 2},
            "colocate": [["policy", "reference"]],
            "shared_processes": True,
        },
    )
    groups = start_role_groups(cfg, CPU, tiny_paths, iterations=10)
    yield groups
    groups.shutdown()


def test_colocated_roles_share_a_placement_group(four_roles):
    slots = four_roles.slots
    assert slots["policy"].placement_group == slots["reference"].placement_group
    assert slots["critic"].placement_group != slots["policy"].placement_group
    assert (slots["policy"].num_cpus, slots["critic"].num_cpus) == (0.5, 1.0)


def test_shared_processes_hold_a_rank_of_each_colocated_role(four_roles):
    policy, reference, critic = four_roles.policy, four_roles.reference, four_roles.critic
    assert list(policy.processes) == list(reference.processes)  # the same actor for each rank
    assert [p.log_file for p in policy.processes.values()] == [p.log_file for p in reference.processes.values()]
    assert [p.role for p in reference.processes.values()] == ["policy+reference"] * 2
    assert not set(critic.processes) & set(policy.processes)


@pytest.mark.parametrize("size", [7, 1])  # 7 shards unevenly over 2 ranks; 1 leaves a rank only padding
def test_sharded_forwards_equal_single_process_transformers(four_roles, tiny_paths, size):
    batch = random_batch(size, seed=size)
    policy = four_roles.policy.logprobs(batch).result()
    assert policy.shape == batch.response_mask.shape
    assert (policy - reference_logprobs(tiny_paths.policy, batch)).abs().max() < EXACT
    reference = four_roles.reference.logprobs(batch).result()
    assert (reference - reference_logprobs(tiny_paths.reference, batch)).abs().max() < EXACT
    values = four_roles.critic.values(batch).result()
    assert (values - reference_values(tiny_paths.critic, batch)).abs().max() < EXACT
    scores = four_roles.reward.scores(batch).result()
    assert scores.shape == (size,)
    assert (scores - reference_scores(tiny_paths.reward, batch)).abs().max() < EXACT


def test_updates_lower_the_loss_and_leave_the_reference_alone(four_roles):
    batch = random_batch(8, seed=11)
    gen = torch.Generator().manual_seed(3)
    reference_before = four_roles.reference.logprobs(batch).result()
    old = four_roles.policy.logprobs(batch).result()
    advantages = torch.randn(batch.response_mask.shape, generator=gen) * batch.response_mask
    batch = batch.with_fields(old_logprobs=old, advantages=advantages)

    def policy_loss() -> float:
        new = four_roles.policy.logprobs(batch).result()
        return ppo_policy_loss(new, old, advantages, batch.response_mask)[0].item()

    loss_before = policy_loss()
    metrics = four_roles.policy.update(batch, kl_coef=0.0).result()
    assert metrics["lr"] == pytest.approx(1e-3) and metrics["grad_norm"] > 0
    assert policy_loss() < loss_before - 0.05

    values = four_roles.critic.values(batch).result()
    returns = values + torch.randn(values.shape, generator=gen) * batch.response_mask
    critic_batch = batch.with_fields(values=values, returns=returns)
    value_error_before = ((values - returns) ** 2 * batch.response_mask).sum()
    metrics = four_roles.critic.update(critic_batch).result()
    assert metrics["value_loss"] > 0
    value_error_after = ((four_roles.critic.values(batch).result() - returns) ** 2 * batch.response_mask).sum()
    assert value_error_after < value_error_before

    assert torch.equal(four_roles.reference.logprobs(batch).result(), reference_before)


def torch_threads(group: RoleGroup) -> list[int]:
    actors = [getattr(actor, "host", actor) for actor in group.actors]  # a hosted role: its process's actor
    return ray.get([actor.__ray_call__.remote(lambda _: torch.get_num_threads()) for actor in actors])


def test_ranks_computing_together_share_their_nodes_cores(four_roles):
    cores = available_cores()
    share_cores([four_roles.reward])  # one rank alone: every core
    assert torch_threads(four_roles.reward) == [cores]
    share_cores([four_roles.policy, four_roles.reward])  # three ranks on the one node
    assert torch_threads(four_roles.policy) == [max(1, cores // 3)] * 2
    assert torch_threads(four_roles.reward) == [max(1, cores // 3)]


def test_update_refuses_an_uneven_split(four_roles):
    with pytest.raises(ValueError, match="7 samples do not split evenly over 2 ranks"):
        four_roles.policy.update(random_batch(7, seed=0), kl_coef=0.0)


def one_update(cfg, paths, batch: SequenceBatch) -> tuple[dict, dict]:
    """Start a 2-rank policy group, run one update, return its metrics and the new full weights."""
    slots = reserve(plan_placement(cfg, CPU, ["policy"]), timeout_s=60)
    group = RoleGroup("policy", PolicyWorker, slots["policy"], cfg, CPU)
    try:
        group.setup(paths.policy, 10).result()
        metrics = group.update(batch, kl_coef=0.0).result()
        weights = group.state_dict().result()
    finally:
        group.shutdown()
        release(slots)
    return metrics, weights


def test_one_update_gives_the_same_weights_under_zero_0_2_3_compiled_and_with_its_own_old_logprobs(
    tiny_dir, tiny_paths
):
    """ZeRO stages 0, 2 and 3 make the same update, and so does a compiled model (``train.policy.compile``).
    So does an update given no old log-probs (one optimizer step: ``Config.old_logprobs_from_update``),
    whose forward gives them: it hands back the log-probs of the weights before it, each sample's in its
    row whatever the micro-batches' shuffle."""
    lr = 1e-4
    batch = random_batch(8, seed=5)
    initial = AutoModelForCausalLM.from_pretrained(tiny_paths.policy, dtype=torch.float32).state_dict()
    gen = torch.Generator().manual_seed(9)
    old_logprobs = reference_logprobs(tiny_paths.policy, batch)
    batch = batch.with_fields(advantages=torch.randn(batch.response_mask.shape, generator=gen) * batch.response_mask)
    results = {}
    for run in (0, 2, 3, "own", "compiled"):
        cfg = role_config(
            tiny_dir,
            algorithm={"kl": {"estimator": "k3", "placement": "loss"}},
            train={"policy": policy_training(run if isinstance(run, int) else 2, lr, compile=run == "compiled")},
            resources={"device": "cpu", "policy": {"gpus_per_node": 2}},
        )
        assert cfg.old_logprobs_from_update()
        results[run] = one_update(
            cfg, tiny_paths, batch if run == "own" else batch.with_fields(old_logprobs=old_logprobs)
        )
    norms = {run: metrics["grad_norm"] for run, (metrics, _) in results.items()}
    for run in (2, 3, "own", "compiled"):
        assert norms[run] == pytest.approx(norms[0], rel=1e-4), run
    assert (results["own"][0]["old_logprobs"] - old_logprobs).abs().max() < EXACT
    assert "old_logprobs" not in results[0][0]
    # Adam's first step moves each weight by lr * g / (|g| + eps): about lr, except where a gradient is
    # near eps, and there a rounding difference in g shows. So: every weight within 10% of one step,
    # and on average within 0.01%.
    for run in (2, 3, "own", "compiled"):
        weights, baseline = results[run][1], results[0][1]
        assert weights.keys() == baseline.keys()
        diffs = torch.cat([(weights[name] - value).abs().flatten() for name, value in baseline.items()])
        assert diffs.max() < 0.1 * lr, f"{run}: max difference {diffs.max():.2e}"
        assert diffs.mean() < 1e-4 * lr, f"{run}: mean difference {diffs.mean():.2e}"
    moved = max((results[0][1][name] - initial[name]).abs().max() for name in initial)
    assert moved > 0.5 * lr


@pytest.mark.parametrize("stage", [2, 3])
def test_bf16_with_gradient_checkpointing_trains(tiny_dir, tiny_paths, stage):
    cfg = role_config(
        tiny_dir,
        train={"policy": policy_training(stage, 1e-3, precision="bf16", gradient_checkpointing=True)},
        resources={"device": "cpu", "policy": {"gpus_per_node": 1}},
    )
    batch = random_batch(8, seed=2)
    slots = reserve(plan_placement(cfg, CPU, ["policy"]), timeout_s=60)
    group = RoleGroup("policy", PolicyWorker, slots["policy"], cfg, CPU)
    try:
        group.setup(tiny_paths.policy, 10).result()
        old = group.logprobs(batch).result()
        batch = batch.with_fields(old_logprobs=old, advantages=batch.response_mask.float())
        metrics = group.update(batch, kl_coef=0.0).result()
        assert metrics["grad_norm"] > 0
        # bf16 forwards: raising every response token's log-prob must still show through the rounding.
        assert (group.logprobs(batch).result() - old).sum() > 0.5
        weights = group.state_dict().result()
        assert all(value.dtype == torch.bfloat16 for name, value in weights.items() if name.endswith("weight"))
    finally:
        group.shutdown()
        release(slots)
