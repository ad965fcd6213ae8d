"""Placement: planned from the config, checked against the cluster before any actor starts."""

import time

import pytest
import ray

from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.placement_plan import PlacementError, check_fits, plan_placement
from rlhf_ray.distributed.placement import release, reserve
from tests.support.tiny_roles import role_config

CPU, CUDA = DeviceProfile("cpu"), DeviceProfile("cuda")


def gpu_config(tmp_path, **resources):
    """A GPU recipe shape (validated as a config, never started here)."""
    return role_config(
        tmp_path,
        data={"prompts_per_step": 8},
        train={
            "policy": {"micro_batch_size": 1, "global_batch_size": 16},
            "critic": {"micro_batch_size": 1, "global_batch_size": 16},
        },
        resources={"device": "cuda", "num_nodes": 3, "gpus_per_node": 8, **resources},
    )


def test_units_follow_colocation_and_shapes(tmp_path):
    cfg = gpu_config(
        tmp_path,
        policy={"num_nodes": 2, "gpus_per_node": 4},
        reference={"num_nodes": 2, "gpus_per_node": 4},
        colocate=[["policy", "reference"]],
    )
    units = {unit.name: unit for unit in plan_placement(cfg, CUDA, cfg.active_roles())}
    assert set(units) == {"policy+reference", "critic", "reward"}
    shared = units["policy+reference"]
    assert (shared.num_bundles, shared.ranks_per_bundle, shared.world_size, shared.spread) == (2, 4, 8, True)
    assert shared.bundle() == {"CPU": 4.0, "GPU": 4.0}
    assert units["critic"].total() == {"CPU": 1.0, "GPU": 1.0}


def test_a_reward_function_takes_no_gpu(tmp_path):
    cfg = role_config(
        tmp_path,
        reward={"source": "function", "function": "rlhf_ray.rewards.math:exact_match"},
        resources={"device": "cuda", "gpus_per_node": 8},
    )
    units = {unit.name: unit for unit in plan_placement(cfg, CUDA, cfg.active_roles())}
    assert units["reward"].bundle() == {"CPU": 1.0}
    assert units["policy"].bundle() == {"CPU": 1.0, "GPU": 1.0}


def test_check_fits_names_what_is_missing(tmp_path):
    cfg = gpu_config(tmp_path, policy={"num_nodes": 2, "gpus_per_node": 8})
    units = plan_placement(cfg, CUDA, ["policy", "critic"])
    nodes = [{"CPU": 32.0, "GPU": 8.0}, {"CPU": 32.0, "GPU": 4.0}]
    with pytest.raises(PlacementError) as exc:
        check_fits(units, nodes)
    message = str(exc.value)
    assert "policy needs 2 node(s) with CPU 8, GPU 8 each; 1 of the cluster's 2 node(s) have that" in message
    assert "the roles need CPU 17, GPU 17 in all (policy: CPU 16, GPU 16; critic: CPU 1, GPU 1)" in message
    assert "but the cluster has CPU 64, GPU 12" in message
    check_fits(units, [{"CPU": 32.0, "GPU": 8.0}, {"CPU": 32.0, "GPU": 9.0}])


def policy_ranks_config(tmp_path, ranks: int):
    """A CPU config whose policy has ``ranks`` ranks on one node."""
    return role_config(
        tmp_path,
        data={"prompts_per_step": ranks},
        train={
            "policy": {"micro_batch_size": 1, "global_batch_size": 2 * ranks},
            "critic": {"micro_batch_size": 1, "global_batch_size": 2 * ranks},
        },
        resources={"device": "cpu", "policy": {"gpus_per_node": ranks}},
    )


@pytest.mark.slow
def test_too_large_a_role_fails_fast_before_any_actor_starts(tmp_path, local_ray):
    cfg = policy_ranks_config(tmp_path, 12)
    start = time.monotonic()
    with pytest.raises(PlacementError, match=r"policy needs 1 node\(s\) with CPU 12 each; 0 of the cluster's 1"):
        reserve(plan_placement(cfg, CPU, ["policy"]), timeout_s=60)
    assert time.monotonic() - start < 5
    assert ray.util.get_current_placement_group() is None
    assert ray.available_resources()["CPU"] == 8


@pytest.mark.slow
def test_placement_that_is_never_granted_times_out_with_a_clear_error(tmp_path, local_ray):
    cfg = policy_ranks_config(tmp_path, 6)
    held = reserve(plan_placement(cfg, CPU, ["policy"]), timeout_s=30)
    try:
        with pytest.raises(PlacementError, match=r"did not grant the placement of policy within 2 s"):
            reserve(plan_placement(cfg, CPU, ["policy"]), timeout_s=2)
    finally:
        release(held)
