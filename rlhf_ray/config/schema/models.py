"""Which model each role holds."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from rlhf_ray.config.schema.base import Dtype, PositiveInt, Section


class TinyModelConfig(Section):
    """A random-initialised Llama-style model and tokenizer, built offline (tests, CPU demo)."""

    vocab_size: Annotated[int, Field(ge=300)] = 1024
    """Tokenizer and embedding size (byte-level BPE needs at least the 256 byte tokens)."""
    hidden_size: PositiveInt = 256
    """Model width."""
    intermediate_size: PositiveInt = 688
    """MLP width."""
    num_layers: PositiveInt = 4
    """Number of decoder layers."""
    num_heads: PositiveInt = 4
    """Attention heads; hidden_size / num_heads must be at least 32 (vLLM's CPU backend)."""
    max_position_embeddings: PositiveInt = 1024
    """Longest sequence (prompt plus response) the model accepts."""
    seed: int = 0
    """Seed of the random initialisation: the same seed builds the same weights."""
    output_dir: str = ".cache/rlhf_ray/tiny_models"
    """Where the built HF folders are written; an existing identical build is reused."""


class TrainableModelConfig(Section):
    """A model that is trained (policy, critic). Its precision is set in ``train.<role>``."""

    path: str | None = None
    """Local HF model folder (on every node). None: built from ``models.tiny`` (the critic from the
    value model, whose backbone is the policy's)."""


class FrozenModelConfig(Section):
    """A model that is only evaluated (reference, reward)."""

    path: str | None = None
    """Local HF model folder (on every node). None: the reference is the initial policy; the reward
    model is built from ``models.tiny``."""
    dtype: Dtype = "auto"
    """Weights dtype for the forward passes (``auto``: bfloat16 where the device computes it fast, else
    float32)."""
    zero_stage: Literal[0, 3] = 0
    """0: a full copy on every rank; 3: parameters sharded over the ranks (for models too large to copy)."""
    compile: bool = False
    """``torch.compile`` the model's transformer, as ``train.<role>.compile`` does for a trained one: on 2
    CPU cores in bf16 the benchmark reference's forward takes about 15 % less after some 10 s of
    compiling. ZeRO stage 0."""


class ModelsSection(Section):
    """What ``models`` holds besides one section per role (``role_sections`` adds those)."""

    tiny: TinyModelConfig | None = None
    """Build tiny offline models for every role whose path is None. None: paths are required."""
    trust_remote_code: bool = False
    """Allow model folders that ship their own modelling code."""
