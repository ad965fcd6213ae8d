"""Checks of the model folders a run loads, made on the driver before any actor starts: each folder
exists and holds an HF model (a ``config.json`` transformers reads, and weights), the tokenizer the
driver tokenises with loads and its ids fit every model's embedding, and a reward model has the score
head it scores with. Only ``config.json``, the tokenizer files and the weights' headers (or index) are
read, so the checks take a fraction of a second even for large models.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PretrainedConfig
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

from rlhf_ray.config import Config


class ModelFolderError(ValueError):
    """A model folder that cannot serve its role; the message names the config field, the folder and the problem."""


@dataclass(frozen=True)
class ModelFolder:
    """A role's model folder and the config field that chose it."""

    role: str
    field: str
    """What to change to pass another folder (``models.policy.path``, ``sft.init_path``, ...)."""
    path: str

    def error(self, problem: str) -> ModelFolderError:
        return ModelFolderError(f"{self.field}: the {self.role} model folder {self.path} {problem}")


def check_role_folders(cfg: Config, folders: Mapping[str, str | None]) -> None:
    """Check the folder of every role ``cfg`` starts (``folders``: each role's folder, None for no model)
    against the policy's tokenizer, whose ids every role reads."""
    models = {role: role_folder(cfg, folders, role) for role in cfg.active_roles() if folders[role] is not None}
    check_model_folders(list(models.values()), tokenizer=models["policy"], score_heads={"reward"})


def role_folder(cfg: Config, folders: Mapping[str, str | None], role: str) -> ModelFolder:
    """``role``'s folder among ``folders``, named by the config field that chose it."""
    return ModelFolder(role, _field(cfg, folders, role), folders[role])


def check_model_folders(
    models: Sequence[ModelFolder], tokenizer: ModelFolder, score_heads: Collection[str] = ()
) -> None:
    """Each folder of ``models`` holds an HF model whose embedding fits the tokenizer of ``tokenizer``'s
    folder; a role in ``score_heads`` also has a trained sequence-scoring head. Raises
    ``ModelFolderError`` for the first problem, missing folders first."""
    configs = [_model_config(model) for model in models]
    vocabulary = _tokenizer_size(tokenizer)
    for model, config in zip(models, configs, strict=True):
        weights = _weight_names(model)
        _check_embedding(model, config, vocabulary, tokenizer)
        if model.role in score_heads:
            _check_score_head(model, config, weights)


def _field(cfg: Config, folders: Mapping[str, str | None], role: str) -> str:
    if getattr(cfg.models, role).path is not None:
        return f"models.{role}.path"
    if role != "policy" and folders[role] == folders["policy"]:
        return _field(cfg, folders, "policy")  # a reference or critic that defaults to the policy's folder
    return "models.tiny"


def _model_config(model: ModelFolder) -> PretrainedConfig:
    folder = Path(model.path)
    if not folder.is_dir():
        raise model.error(
            "does not exist; pass a local HF model folder (hub ids are not downloaded: fetch the model "
            "first, e.g. with `hf download`, and pass its folder)"
        )
    if not (folder / "config.json").is_file():
        raise model.error("is not an HF model folder: it has no config.json")
    try:
        return AutoConfig.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise model.error(f"has a config.json transformers cannot read: {exc}") from None


def _weight_names(model: ModelFolder) -> set[str]:
    """The names of the folder's weight tensors, from the safetensors headers or a shard index."""
    folder = Path(model.path)
    for index in (SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_INDEX_NAME):
        if (folder / index).is_file():
            return set(json.loads((folder / index).read_text())["weight_map"])
    if (folder / SAFE_WEIGHTS_NAME).is_file():
        try:
            with safe_open(folder / SAFE_WEIGHTS_NAME, framework="pt") as weights:
                return set(weights.keys())
        except (OSError, SafetensorError) as exc:
            raise model.error(f"has an unreadable {SAFE_WEIGHTS_NAME}: {exc}") from None
    if (folder / WEIGHTS_NAME).is_file():
        return set(torch.load(folder / WEIGHTS_NAME, map_location="meta", mmap=True, weights_only=True))
    raise model.error(
        f"has no weights: none of {SAFE_WEIGHTS_NAME}, {SAFE_WEIGHTS_INDEX_NAME}, {WEIGHTS_NAME}, {WEIGHTS_INDEX_NAME}"
    )


def _tokenizer_size(model: ModelFolder) -> int:
    try:
        return len(AutoTokenizer.from_pretrained(model.path))
    except (OSError, ValueError, TypeError) as exc:
        raise model.error(f"has no tokenizer transformers can load: {exc}") from None


def _check_embedding(model: ModelFolder, config: PretrainedConfig, vocabulary: int, tokenizer: ModelFolder) -> None:
    embedding = config.get_text_config().vocab_size
    if vocabulary > embedding:
        source = "its own tokenizer" if tokenizer.path == model.path else f"the tokenizer of {tokenizer.path}"
        raise model.error(
            f"has an embedding of {embedding} tokens (vocab_size in config.json), but {source}, which the run "
            f"tokenises with, has {vocabulary}: token ids up to {vocabulary - 1} would index past the embedding; "
            "use the tokenizer the model was trained with"
        )


def _check_score_head(model: ModelFolder, config: PretrainedConfig, weights: set[str]) -> None:
    """The weights hold every parameter of the sequence classifier's head: without them the loader
    would start a new head at zero, and the reward model would score every response 0."""
    try:
        with torch.device("meta"):  # only the parameter names: no memory allocated
            scorer = AutoModelForSequenceClassification.from_config(config)
    except ValueError as exc:
        raise model.error(f"holds a model transformers has no sequence classifier for: {exc}") from None
    backbone = scorer.base_model_prefix + "."
    head = [name for name, _ in scorer.named_parameters() if not name.startswith(backbone)]
    missing = [name for name in head if name not in weights]
    if missing:
        architecture = ", ".join(config.architectures or [config.model_type])
        raise model.error(
            f"has no score head: its weights ({architecture}) lack {', '.join(missing)}, so every reward would be "
            "0; pass a reward model trained to score sequences (`rlhf-ray rm` exports one)"
        )
