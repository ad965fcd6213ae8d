"""Worker methods declare how a role group calls them; the driver calls them by name on the group."""

import pytest

from rlhf_ray.distributed.dispatch import Dispatch, dispatch_mode
from rlhf_ray.workers import CriticWorker, PolicyWorker, ReferenceWorker, RewardFunctionWorker, RewardModelWorker
from rlhf_ray.workers.dpo import DPOWorker
from rlhf_ray.workers.reward_trainer import RewardTrainerWorker
from rlhf_ray.workers.sft import SFTWorker

DECLARED = {
    PolicyWorker: {"setup": Dispatch.ALL, "logprobs": Dispatch.SHARDED, "update": Dispatch.EVEN,
                   "state_dict": Dispatch.RANK_ZERO, "save": Dispatch.ALL, "load": Dispatch.ALL,
                   "export_hf": Dispatch.ALL, "broadcast_weights": Dispatch.ALL,
                   "start_rollout_engine": Dispatch.ALL, "load_own_engine": Dispatch.ALL},
    CriticWorker: {"setup": Dispatch.ALL, "values": Dispatch.SHARDED, "update": Dispatch.EVEN},
    ReferenceWorker: {"setup": Dispatch.ALL, "logprobs": Dispatch.SHARDED},
    RewardModelWorker: {"setup": Dispatch.ALL, "scores": Dispatch.SHARDED},
    RewardFunctionWorker: {"setup": Dispatch.ALL, "scores": Dispatch.SHARDED},
    SFTWorker: {"update": Dispatch.EVEN, "response_nll": Dispatch.SHARDED},
    RewardTrainerWorker: {"update": Dispatch.EVEN, "pair_scores": Dispatch.SHARDED},
    DPOWorker: {"setup": Dispatch.ALL, "update": Dispatch.EVEN, "pair_logprobs": Dispatch.SHARDED},
}  # fmt: skip


@pytest.mark.parametrize("worker", DECLARED, ids=lambda worker: worker.__name__)
def test_the_methods_the_driver_calls_declare_their_dispatch(worker):
    for method, mode in DECLARED[worker].items():
        assert dispatch_mode(worker, method) is mode, f"{worker.__name__}.{method}"


def test_methods_the_driver_does_not_call_declare_none():
    assert dispatch_mode(PolicyWorker, "share_cores") is None  # sent to each rank with its own argument
    assert dispatch_mode(PolicyWorker, "no_such_method") is None
