"""The device profile: bf16 detection, and what ``auto`` precisions, dtypes and the attention kernel become."""

import pytest

from rlhf_ray.config import validate_config
from rlhf_ray.config.device import DeviceProfile, lists_bf16_flags, resolve_device
from tests.support.raw_configs import base

EPYC = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\nbugs\t\t: sysret_ss_attrs\n"
OLD_XEON = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n"
SAPPHIRE_RAPIDS = "flags\t\t: avx512f amx_tile amx_bf16 amx_int8\n"


@pytest.mark.parametrize(
    ("cpuinfo", "native"),
    [(EPYC, True), (OLD_XEON, False), (SAPPHIRE_RAPIDS, True), ("processor\t: 0\n", False), ("", False)],
)
def test_bf16_is_detected_from_the_cpu_flags(cpuinfo, native):
    assert lists_bf16_flags(cpuinfo) is native


@pytest.mark.parametrize(
    ("bf16", "precision", "dtype"), [(True, "bf16", "bfloat16"), (False, "fp32", "float32")]
)  # fmt: skip
def test_auto_precisions_and_dtypes_become_the_devices(bf16, precision, dtype):
    cfg = validate_config(base())
    assert (cfg.train.policy.precision, cfg.rollout.dtype, cfg.models.reference.dtype) == ("auto",) * 3
    decided = DeviceProfile("cpu", bf16=bf16).resolved(cfg)
    assert (decided.train.policy.precision, decided.train.critic.precision) == (precision, precision)
    assert (decided.sft.train.precision, decided.reward_model.train.precision) == (precision, precision)
    assert decided.dpo.train.precision == precision
    assert (decided.rollout.dtype, decided.models.reference.dtype, decided.models.reward.dtype) == (dtype,) * 3
    assert decided.train.policy.lr == cfg.train.policy.lr and decided.name == cfg.name


def test_explicit_choices_stay_and_a_decided_config_is_returned_as_is():
    cfg = validate_config(
        base(
            rollout={"dtype": "float32"},
            train={
                "policy": {"precision": "fp32", "micro_batch_size": 4, "global_batch_size": 16},
                "critic": {"precision": "bf16", "micro_batch_size": 4, "global_batch_size": 16},
            },
            models={"reference": {"dtype": "float16"}, "reward": {"dtype": "float32"}},
            sft={"train": {"precision": "fp32"}},
            reward_model={"train": {"precision": "fp32"}},
            dpo={"train": {"precision": "fp32"}},
        )
    )
    decided = DeviceProfile("cpu", bf16=True).resolved(cfg)
    assert decided is cfg
    assert (cfg.train.policy.precision, cfg.train.critic.precision, cfg.models.reference.dtype) == (
        "fp32",
        "bf16",
        "float16",
    )


def test_the_attention_kernel_follows_the_device():
    assert DeviceProfile("cpu", bf16=True).attention == "eager"
    assert DeviceProfile("cpu", bf16=False).attention == "sdpa"
    assert DeviceProfile("cuda", bf16=True).attention == "sdpa"
    assert resolve_device("auto", cluster_gpus=1) == DeviceProfile("cuda", bf16=True)
