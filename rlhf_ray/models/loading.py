"""Load any HF model folder (a tiny build or a real checkpoint) in the shape a role needs.

Only local folders are accepted: a hub id is not fetched, so every node of a cluster reads the
same files and a typo fails at once instead of after a download attempt.
"""

from pathlib import Path

import deepspeed
import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.integrations import is_deepspeed_zero3_enabled

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PADDING_SIDES = ("left", "right")


def load_causal_lm(path: str | Path, dtype: str, *, role: str = "model", attention: str = "sdpa") -> PreTrainedModel:
    """A causal LM with every weight from the folder (policy, reference, rollout fallback)."""
    return _load(AutoModelForCausalLM, path, dtype, role, attention, may_add_head=False)


def load_value_model(path: str | Path, dtype: str, *, role: str = "model", attention: str = "sdpa") -> PreTrainedModel:
    """A token classifier with one label: `logits[..., 0]` is a value per token, shape [B, T].

    The folder may hold a value model or a plain causal LM; from a causal LM the backbone is
    reused and the value head is new. A new head starts at zero (every value 0 until trained, the
    same on every rank). Dropout before the head is off: values must not be noisy in train mode.
    """
    return _load(
        AutoModelForTokenClassification,
        path,
        dtype,
        role,
        attention,
        may_add_head=True,
        num_labels=1,
        classifier_dropout=0.0,
    )


def load_sequence_score_model(
    path: str | Path, dtype: str, *, role: str = "model", attention: str = "sdpa"
) -> PreTrainedModel:
    """A sequence classifier with one label: one score per sequence.

    The model's own forward reads `logits[:, 0]` at the rightmost token that is not
    `config.pad_token_id` (either padding side works, but only with a pad id set);
    `rlhf_ray.models.forward.sequence_scores` reads the last attended token instead. As for the
    value model, a causal-LM folder gives a new score head that starts at zero.
    """
    return _load(AutoModelForSequenceClassification, path, dtype, role, attention, may_add_head=True, num_labels=1)


def load_tokenizer(path: str | Path, padding_side: str, *, role: str = "tokenizer") -> PreTrainedTokenizerBase:
    """The folder's tokenizer, padding on `padding_side`; a tokenizer without a pad token pads
    with its end-of-sequence token."""
    if padding_side not in PADDING_SIDES:
        raise ValueError(f"{role}: padding_side={padding_side!r} is not one of {PADDING_SIDES}")
    tokenizer = AutoTokenizer.from_pretrained(_local_folder(path, role), padding_side=padding_side)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"{role}: the tokenizer in {path} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load(auto_class, path, dtype: str, role: str, attention: str, *, may_add_head: bool, **config_overrides):
    if dtype not in DTYPES:
        raise ValueError(f"{role}: dtype={dtype!r} is not one of {tuple(DTYPES)}")
    folder = _local_folder(path, role)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{role}: {folder} is not an HF model folder (no config.json)")
    config = AutoConfig.from_pretrained(folder)
    for name, value in config_overrides.items():
        setattr(config, name, value)
    model, info = auto_class.from_pretrained(
        folder, config=config, dtype=DTYPES[dtype], attn_implementation=attention, output_loading_info=True
    )
    backbone = model.base_model_prefix + "."
    missing = sorted(info["missing_keys"])
    missing_backbone = [key for key in missing if key.startswith(backbone)]
    if missing_backbone or (missing and not may_add_head):
        raise ValueError(
            f"{role}: the checkpoint in {path} lacks weights for {missing_backbone or missing}; "
            "it does not fit this model class"
        )
    new_head = [model.get_parameter(key) for key in missing]
    # Under ZeRO-3 the parameters are already sharded: gather them to write the zeros.
    with deepspeed.zero.GatheredParameters(new_head, modifier_rank=0, enabled=is_deepspeed_zero3_enabled()):
        with torch.no_grad():
            for param in new_head:
                param.zero_()
    return model


def _local_folder(path: str | Path, role: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{role}: no folder at {folder}; pass a local HF model folder (hub ids are not "
            "downloaded: fetch the model first, e.g. with `hf download`, and pass its folder)"
        )
    return folder
