"""Each rollout engine and each weight-sync mode the config accepts has its one implementation."""

import importlib
import typing

from rlhf_ray.config.schema import ROLLOUT_ENGINES, RolloutConfig
from rlhf_ray.distributed.weight_sync.strategies import WEIGHT_SYNCS, InProcessSync, WeightSync


def accepted(field: str) -> set[str]:
    return set(typing.get_args(RolloutConfig.model_fields[field].annotation))


def test_every_engine_the_config_accepts_is_registered_and_builds_from_its_module():
    assert set(ROLLOUT_ENGINES) == accepted("engine") == {"vllm", "hf"}
    for module in ROLLOUT_ENGINES.values():
        assert callable(importlib.import_module(module).create_engine)


def test_every_weight_sync_mode_is_one_strategy_and_only_in_process_lives_in_the_policy():
    assert set(WEIGHT_SYNCS) == accepted("weight_sync")
    assert all(issubclass(strategy, WeightSync) for strategy in WEIGHT_SYNCS.values())
    assert [mode for mode, strategy in WEIGHT_SYNCS.items() if strategy.engines_inside_policy] == ["in_process"]
    assert WEIGHT_SYNCS["in_process"] is InProcessSync
