"""The device, collective backend and DeepSpeed accelerator: chosen once, from the config and what the
cluster has. Nothing else in the code branches on them."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

    from rlhf_ray.config.schema import Config, ResourcesConfig

BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""CPU features with native bf16 matrix multiplies (about five times the fp32 rate on an EPYC with
avx512_bf16); a CPU without them computes in fp32."""


def lists_bf16_flags(cpuinfo: str) -> bool:
    """Whether a ``/proc/cpuinfo`` text names a native bf16 feature in its first ``flags`` line."""
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return not BF16_CPU_FLAGS.isdisjoint(flags)


@cache
def cpu_computes_bf16() -> bool:
    """Whether this machine's CPU multiplies bf16 natively (Linux; elsewhere: no)."""
    try:
        return lists_bf16_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


@dataclass(frozen=True)
class DeviceProfile:
    kind: Literal["cpu", "cuda"]
    bf16: bool = field(default_factory=cpu_computes_bf16)
    """Whether the device computes bf16 fast: what ``auto`` precisions and dtypes become. Detected once,
    where the profile is made (the driver), and carried to every actor with it."""

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

    @property
    def attention(self) -> str:
        """The transformers attention kernel the models use. On a CPU computing in bf16 the plain one: a
        bf16 forward + backward of the benchmark policy over 128 x 48 left-padded tokens on 2 cores took
        0.54 s with SDPA and 0.41 s eager (forwards alone: the same); in fp32 SDPA was faster (0.99 s
        against 1.05 s), as it is on GPUs."""
        return "eager" if self.kind == "cpu" and self.bf16 else "sdpa"

    def resolved(self, cfg: Config) -> Config:
        """``cfg`` with every ``auto`` precision (``train.*.precision``) and dtype (``rollout.dtype``,
        ``models.*.dtype``) decided for this device; the same config when none is ``auto``."""
        concrete = {"precision": "bf16" if self.bf16 else "fp32", "dtype": "bfloat16" if self.bf16 else "float32"}

        def decide(node: Any) -> Any:
            if isinstance(node, dict):
                return {
                    key: concrete[key] if key in concrete and value == "auto" else decide(value)
                    for key, value in node.items()
                }
            return node

        raw = cfg.model_dump()
        decided = decide(raw)
        return cfg if decided == raw else type(cfg).model_validate(decided)

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
    kind = ("cuda" if cluster_gpus > 0 else "cpu") if requested == "auto" else requested
    return DeviceProfile(kind, bf16=kind == "cuda" or cpu_computes_bf16())  # type: ignore[arg-type]
