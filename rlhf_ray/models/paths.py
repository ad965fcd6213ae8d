"""The model folder each role loads, from the config: given paths, or a tiny build made offline."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from rlhf_ray.config import Config
from rlhf_ray.models.tiny import TinyModelSpec, build_tiny_models


@dataclass(frozen=True)
class ModelPaths:
    policy: str
    critic: str
    reference: str
    reward: str | None
    """None when the reward is a function."""


def resolve_model_paths(cfg: Config) -> ModelPaths:
    """Every role's folder; builds the tiny models first when the config asks for them."""
    models = cfg.models
    tiny = _build_tiny(cfg) if models.tiny is not None else None
    policy = models.policy.path or str(tiny.policy)
    return ModelPaths(
        policy=policy,
        critic=models.critic.path or (str(tiny.value) if tiny else policy),
        reference=models.reference.path or policy,
        reward=(models.reward.path or str(tiny.reward)) if cfg.reward.source == "model" else None,
    )


def _build_tiny(cfg: Config):
    tiny = cfg.models.tiny
    spec = TinyModelSpec(**tiny.model_dump(exclude={"output_dir"}))
    # One folder per spec, so experiments with different tiny models never collide.
    digest = hashlib.sha256(json.dumps(tiny.model_dump(exclude={"output_dir"}), sort_keys=True).encode()).hexdigest()
    return build_tiny_models(spec, Path(tiny.output_dir) / digest[:12])
