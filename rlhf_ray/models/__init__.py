"""Model folders: the offline tiny-model factory and the loaders every role uses."""

from rlhf_ray.models.loading import (
    load_causal_lm,
    load_sequence_score_model,
    load_tokenizer,
    load_value_model,
)
from rlhf_ray.models.tiny import TinyModelPaths, TinyModelSpec, build_tiny_models
from rlhf_ray.models.tokenizer import build_tokenizer

__all__ = [
    "TinyModelPaths",
    "TinyModelSpec",
    "build_tiny_models",
    "build_tokenizer",
    "load_causal_lm",
    "load_sequence_score_model",
    "load_tokenizer",
    "load_value_model",
]
