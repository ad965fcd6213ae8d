"""DeepSpeed configs and learning-rate schedules built from the role config."""

import pytest

from rlhf_ray.config.schema import RoleTrainingConfig
from rlhf_ray.engines.deepspeed_engine import training_config
from rlhf_ray.engines.schedule import lr_multiplier


def test_training_config_derives_accumulation_from_batch_sizes():
    train = RoleTrainingConfig(zero_stage=3, precision="bf16", micro_batch_size=4, global_batch_size=64, grad_clip=None)
    config = training_config(train, world_size=8)
    assert config["train_micro_batch_size_per_gpu"] == 4
    assert config["gradient_accumulation_steps"] == 2
    assert config["train_batch_size"] == 64
    assert config["zero_optimization"]["stage"] == 3 and config["bf16"]["enabled"]
    assert config["gradient_clipping"] == 0.0


def test_offload_is_passed_to_zero():
    train = RoleTrainingConfig(zero_stage=3, offload_optimizer=True, offload_params=True)
    zero = training_config(train, world_size=1)["zero_optimization"]
    assert zero["offload_optimizer"]["device"] == "cpu" and zero["offload_param"]["device"] == "cpu"


def test_warmup_then_cosine_to_the_floor():
    multiplier = lr_multiplier("cosine", warmup_steps=4, total_steps=14, min_ratio=0.1)
    assert [multiplier(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert multiplier(4) == pytest.approx(1.0)
    assert multiplier(9) == pytest.approx(0.1 + 0.9 * 0.5)
    assert multiplier(14) == pytest.approx(0.1) and multiplier(100) == pytest.approx(0.1)


def test_constant_schedule_and_unknown_names():
    assert lr_multiplier("constant", 0, 10, 0.1)(7) == 1.0
    with pytest.raises(ValueError, match="unknown lr schedule 'linear'"):
        lr_multiplier("linear", 0, 10, 0.1)
