"""The device, collective backend and DeepSpeed accelerator: chosen once, from the config and what the
cluster has. Nothing else in the code branches on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

    from rlhf_ray.config.schema import ResourcesConfig


@dataclass(frozen=True)
class DeviceProfile:
    kind: Literal["cpu", "cuda"]

    @property
    def backend(self) -> str:
        return "nccl" if self.kind == "cuda" else "gloo"

    @property
    def accelerator(self) -> str:
        """The value of DS_ACCELERATOR, so DeepSpeed does not guess."""
        return self.kind

    @property
    def torch_device(self) -> torch.device:
        import torch

        # Ray shows each actor only its own GPU, so it is always the first one.
        return torch.device("cuda", 0) if self.kind == "cuda" else torch.device("cpu")

    def actor_env(self, resources: ResourcesConfig) -> dict[str, str]:
        """Environment every role actor and engine starts with: the accelerator, OpenMP threads
        (``resources.threads_per_actor``; None: Ray's choice), then ``resources.env_vars``."""
        env = {"DS_ACCELERATOR": self.accelerator}
        if resources.threads_per_actor is not None:
            env["OMP_NUM_THREADS"] = str(resources.threads_per_actor)
        return env | dict(resources.env_vars)


def resolve_device(requested: str, cluster_gpus: float) -> DeviceProfile:
    """``auto`` is CUDA when the cluster has GPUs, else CPU; ``cuda`` without GPUs is an error."""
    if requested == "cuda" and cluster_gpus == 0:
        raise RuntimeError("resources.device is 'cuda' but the Ray cluster has no GPUs; use 'auto' or 'cpu'")
    if requested == "auto":
        return DeviceProfile("cuda" if cluster_gpus > 0 else "cpu")
    return DeviceProfile(requested)  # type: ignore[arg-type]
