"""Tiny random Llama-style models, written as ordinary HF folders, for tests and the CPU demo.

One build writes three self-contained folders (weights as safetensors, config, tokenizer):

- `policy`: `LlamaForCausalLM`, random init from `spec.seed`, untied input/output embeddings.
- `value`:  `LlamaForTokenClassification` with one label (a per-token value for the critic); its
  backbone is a copy of the policy's, its head is drawn from `spec.seed + 1`.
- `reward`: `LlamaForSequenceClassification` with one label (one score per sequence), drawn
  whole from `spec.seed + 2`: an independent network, so a reward never mirrors the policy by
  construction and a test that swaps the two roles sees different numbers.

Weights are drawn from private generators (the global torch RNG is left alone), so a spec always
gives the same bytes. A build is staged beside `out_dir` and renamed into place with a spec marker
written last; a later call with the same spec reuses it.
"""

import dataclasses
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    LlamaForTokenClassification,
    PreTrainedTokenizerFast,
)

from rlhf_ray.models.tokenizer import build_tokenizer

SPEC_MARKER = "tiny_model_spec.json"
# Bump when the factory's output changes for an unchanged spec, so stale builds are not reused.
_FORMAT_VERSION = 1
# vLLM's CPU attention backend supports no head size below this.
_MIN_HEAD_DIM = 32


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape and seed of a tiny model family; every field ends up in the HF configs.

    `init_std` is the standard deviation of every weight matrix. It is far above the usual 0.02 so
    that a random model's greedy continuations differ from prompt to prompt and step to step
    (with 0.02 the logits are nearly flat and greedy decoding repeats a single token), and so that
    the top two logits are far enough apart for vLLM and transformers to agree token for token.
    """

    vocab_size: int = 1024
    hidden_size: int = 256
    intermediate_size: int = 688
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int | None = None  # None: one key/value head per attention head
    max_position_embeddings: int = 512
    seed: int = 0
    init_std: float = 0.1

    def __post_init__(self) -> None:
        if self.num_kv_heads is None:
            object.__setattr__(self, "num_kv_heads", self.num_heads)
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads={self.num_heads} is not divisible by num_kv_heads={self.num_kv_heads}")
        if self.head_dim < _MIN_HEAD_DIM:
            raise ValueError(
                f"head_dim = hidden_size / num_heads = {self.head_dim} is too small: vLLM's CPU "
                f"backend needs head_dim >= {_MIN_HEAD_DIM}; raise hidden_size or lower num_heads"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass(frozen=True)
class TinyModelPaths:
    """The folders of one build; each loads with `from_pretrained` on its own."""

    root: Path
    policy: Path
    value: Path
    reward: Path

    @classmethod
    def under(cls, root: Path) -> "TinyModelPaths":
        return cls(root=root, policy=root / "policy", value=root / "value", reward=root / "reward")


def build_tiny_models(spec: TinyModelSpec, out_dir: str | Path) -> TinyModelPaths:
    """Write the policy, value and reward folders of `spec` into `out_dir`, or reuse them.

    `out_dir` must be absent, empty, or hold a finished build of the same spec.
    """
    out_dir = Path(out_dir).absolute()
    paths = TinyModelPaths.under(out_dir)
    if _read_spec(out_dir) == spec:
        return paths
    _check_free(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        _write_models(spec, TinyModelPaths.under(staging))
        (staging / SPEC_MARKER).write_text(_spec_json(spec))
        staging.rename(out_dir)  # replaces out_dir only when it is absent or empty
    except OSError:
        if _read_spec(out_dir) != spec:  # not a concurrent builder of the same spec finishing first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths


def _write_models(spec: TinyModelSpec, paths: TinyModelPaths) -> None:
    tokenizer = build_tokenizer(spec.vocab_size, spec.seed)
    tokenizer.model_max_length = spec.max_position_embeddings
    config = _llama_config(spec, tokenizer)

    with torch.random.fork_rng(devices=[]):  # HF's own init draws from the global RNG
        policy = LlamaForCausalLM(config)
        value = LlamaForTokenClassification(_with_one_label(config, classifier_dropout=0.0))
        reward = LlamaForSequenceClassification(_with_one_label(config))
    _init_weights(policy.named_parameters(), spec.init_std, spec.seed)
    value.model.load_state_dict(policy.model.state_dict())
    _init_weights(value.score.named_parameters(), spec.init_std, spec.seed + 1)
    _init_weights(reward.named_parameters(), spec.init_std, spec.seed + 2)

    for model, folder in ((policy, paths.policy), (value, paths.value), (reward, paths.reward)):
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)


def _llama_config(spec: TinyModelSpec, tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=spec.vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_position_embeddings,
        initializer_range=spec.init_std,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        dtype="float32",
    )


def _with_one_label(config: LlamaConfig, **overrides) -> LlamaConfig:
    fields = {k: v for k, v in config.to_dict().items() if k not in ("id2label", "label2id")}
    return LlamaConfig(**fields, num_labels=1, **overrides)


def _init_weights(named_parameters, std: float, seed: int) -> None:
    """Matrices ~ N(0, std), biases 0, norm scales 1, drawn in parameter order from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in named_parameters:
            if name.endswith("bias"):
                param.zero_()
            elif param.ndim == 1:
                param.fill_(1.0)
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * std)


def _spec_json(spec: TinyModelSpec) -> str:
    record = {"format_version": _FORMAT_VERSION, "spec": dataclasses.asdict(spec)}
    return json.dumps(record, indent=2, sort_keys=True)


def _read_spec(out_dir: Path) -> TinyModelSpec | None:
    """The spec of the finished build in `out_dir`, or None if there is none of this format."""
    try:
        record = json.loads((out_dir / SPEC_MARKER).read_text())
    except FileNotFoundError:
        return None
    if record.get("format_version") != _FORMAT_VERSION:
        return None
    return TinyModelSpec(**record["spec"])


def _check_free(out_dir: Path) -> None:
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        return
    what = "a tiny-model build of another spec" if (out_dir / SPEC_MARKER).exists() else "other files"
    raise FileExistsError(
        f"cannot build tiny models in {out_dir}: it holds {what}; delete it or choose another out_dir"
    )
