"""The model folder each role loads, from the config: given paths, or a tiny build made offline; checked
(``models.checks``) before any actor loads it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rlhf_ray.config import Config
from rlhf_ray.config.schema.roles import ROLE_SPECS, ROLES
from rlhf_ray.models.checks import check_role_folders
from rlhf_ray.models.tiny import TinyModelPaths, TinyModelSpec, build_tiny_models


@dataclass(frozen=True)
class ModelPaths:
    """Each role's folder (None where the role has no model, e.g. a reward function): ``paths.policy``,
    or ``paths.folders[role]``."""

    folders: Mapping[str, str | None]

    def __getattr__(self, role: str) -> str | None:
        folders = self.__dict__.get("folders", {})
        if role not in folders:
            raise AttributeError(f"no role {role!r}; the roles are {sorted(folders)}")
        return folders[role]


def resolve_model_paths(cfg: Config) -> ModelPaths:
    """Every role's folder (``model_folders``), those of the roles ``cfg`` starts checked: a folder that is
    missing, no HF model, a tokenizer that does not fit a model or a reward model without a score head
    raises ``ModelFolderError`` naming the config field and the folder."""
    paths = model_folders(cfg)
    check_role_folders(cfg, paths.folders)
    return paths


def model_folders(cfg: Config) -> ModelPaths:
    """Every role's folder, as the role table says; builds the tiny models first when the config asks for them."""
    tiny = _build_tiny(cfg) if cfg.models.tiny is not None else None
    policy = ROLE_SPECS["policy"].model_folder(cfg, tiny, None)
    return ModelPaths({role.name: role.model_folder(cfg, tiny, policy) for role in ROLES})


def _build_tiny(cfg: Config) -> TinyModelPaths:
    tiny = cfg.models.tiny
    spec = TinyModelSpec(**tiny.model_dump(exclude={"output_dir"}))
    # One folder per spec, so experiments with different tiny models never collide.
    digest = hashlib.sha256(json.dumps(tiny.model_dump(exclude={"output_dir"}), sort_keys=True).encode()).hexdigest()
    return build_tiny_models(spec, Path(tiny.output_dir) / digest[:12])
