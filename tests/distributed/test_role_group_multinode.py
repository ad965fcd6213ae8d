"""A role group spread over a simulated multi-node cluster."""

import pytest
import ray

from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.placement_plan import plan_placement
from rlhf_ray.distributed.placement import release, reserve
from rlhf_ray.distributed.role_group import RoleGroup
from rlhf_ray.workers import PolicyWorker
from tests.conftest import simulated_cluster
from tests.support.tiny_roles import random_batch, role_config

CPU = DeviceProfile("cpu")


@pytest.fixture
def two_node_cluster():
    """Two simulated nodes of 2 CPUs each on this machine."""
    with simulated_cluster(2, 2) as cluster:
        yield cluster


@pytest.mark.slow
def test_a_two_node_group_spreads_over_both_nodes_and_trains(tiny_dir, tiny_paths, two_node_cluster):
    cfg = role_config(tiny_dir, resources={"device": "cpu", "num_nodes": 2, "policy": {"num_nodes": 2}})
    slots = reserve(plan_placement(cfg, CPU, ["policy"]), timeout_s=60)
    group = RoleGroup("policy", PolicyWorker, slots["policy"], cfg, CPU)
    try:
        node_ids = group.node_id().result()
        assert len(set(node_ids)) == 2
        assert set(node_ids) == {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        group.setup(tiny_paths.policy, 10).result()
        batch = random_batch(8, seed=1)
        old = group.logprobs(batch).result()
        batch = batch.with_fields(old_logprobs=old, advantages=batch.response_mask.float())
        metrics = group.update(batch, kl_coef=0.0).result()
        assert metrics["grad_norm"] > 0
        # Raising the log-prob of every response token is what a positive advantage asks for.
        assert (group.logprobs(batch).result() - old).sum() > 0
    finally:
        group.shutdown()
        release(slots)
