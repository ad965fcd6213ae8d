"""Roles and rollout engines placed over a simulated 3-node cluster as a multi-node config asks, and a
PPO step through `rlhf_ray.trainers.ppo.train` on it."""

import json
from collections import defaultdict

import pytest
import ray
from ray.util.state import list_actors

from rlhf_ray.config import ConfigError, validate_config
from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.placement_plan import plan_rollout
from rlhf_ray.trainers.ppo import train
from tests.conftest import simulated_cluster
from tests.support.tiny_roles import role_config

CPU, CUDA = DeviceProfile("cpu"), DeviceProfile("cuda")


def engines_config(tmp_path, **rollout):
    return role_config(tmp_path, rollout={"num_engines": 4, **rollout}, resources={"device": "cpu", "num_nodes": 2})


def test_engines_spread_evenly_over_the_nodes_asked_for(tmp_path):
    spread = plan_rollout(engines_config(tmp_path, num_nodes=2), CPU)
    assert (spread.num_bundles, spread.ranks_per_bundle, spread.spread) == (2, 2, True)
    assert spread.bundle() == {"CPU": 2.0}
    # Tensor-parallel GPUs of an engine stay in its node's bundle.
    assert plan_rollout(engines_config(tmp_path, num_nodes=2), CUDA).bundle() == {"CPU": 2.0, "GPU": 2.0}
    packed = plan_rollout(engines_config(tmp_path), CPU)
    assert (packed.num_bundles, packed.ranks_per_bundle, packed.spread) == (4, 1, False)


def test_engine_nodes_must_divide_the_engines_and_exist(tmp_path):
    raw = {"rollout": {"num_engines": 4, "num_nodes": 3}, "resources": {"device": "cpu", "num_nodes": 2}}
    with pytest.raises(ConfigError) as exc:
        validate_config(raw)
    assert "rollout.num_nodes: 3 exceeds resources.num_nodes (2)" in str(exc.value)
    assert "rollout.num_nodes: 3 does not divide rollout.num_engines (4)" in str(exc.value)


@pytest.fixture
def three_nodes():
    """Three simulated nodes of 3 CPUs each: room for the roles however Ray orders the placement."""
    with simulated_cluster(3, 3) as cluster:
        yield cluster


@pytest.mark.slow
def test_a_multi_node_config_places_every_role_as_asked_and_trains(tmp_path, tiny_dir, three_nodes):
    cfg = role_config(
        tiny_dir,
        rollout={"engine": "hf", "num_engines": 2, "num_nodes": 2, "samples_per_prompt": 2, "max_new_tokens": 8},
        train={"max_steps": 1},
        resources={
            "device": "cpu",
            "num_nodes": 3,
            "policy": {"num_nodes": 2, "gpus_per_node": 1},
            "env_vars": {"RAY_DEBUG": "legacy"},
        },
        logging={"dir": str(tmp_path / "logs"), "wandb": {"mode": "disabled"}},
        checkpoint={"dir": str(tmp_path / "checkpoints"), "resume": "never", "export_dir": None},
    )
    result = train(cfg)
    assert result.steps == 1
    [record] = [json.loads(line) for line in result.metrics_file.read_text().splitlines()]
    assert record["step"] == 1 and "train/policy_loss" in record and "train/value_loss" in record

    # Where every actor of this run ran (they have exited; Ray keeps their record).
    nodes = defaultdict(list)
    for actor in list_actors(filters=[("job_id", "=", ray.get_runtime_context().get_job_id())], detail=True):
        nodes[actor.class_name].append(actor.node_id)
        assert json.loads(actor.serialized_runtime_env)["env_vars"]["RAY_DEBUG"] == "legacy"
    assert {name: len(ids) for name, ids in nodes.items()} == {
        "PolicyWorker": 2, "CriticWorker": 1, "ReferenceWorker": 1, "RewardModelWorker": 1, "RolloutWorker": 2,
    }  # fmt: skip
    assert len(set(nodes["PolicyWorker"])) == 2  # one rank on each of two nodes
    assert len(set(nodes["RolloutWorker"])) == 2  # one engine on each of two nodes
    alive = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    assert {node for ids in nodes.values() for node in ids} <= alive and len(alive) == 3


def test_a_tensor_parallel_engine_reserves_a_cpu_per_shard(tmp_path):
    unit = plan_rollout(engines_config(tmp_path, tensor_parallel_size=2), CPU)
    assert (unit.num_bundles, unit.bundle()) == (4, {"CPU": 2.0})
