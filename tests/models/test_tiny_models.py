import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from rlhf_ray.models import TinyModelSpec, build_tiny_models
from rlhf_ray.models.tiny import SPEC_MARKER

ROLES = ("policy", "value", "reward")
ARCHITECTURES = {
    "policy": "LlamaForCausalLM",
    "value": "LlamaForTokenClassification",
    "reward": "LlamaForSequenceClassification",
}
# Smaller than the default, for tests that must build their own copy.
SMALL = TinyModelSpec(vocab_size=512, hidden_size=64, intermediate_size=128, num_layers=1, num_heads=2)


def weights(folder):
    return load_file(folder / "model.safetensors")


def files_of(root):
    return {path.relative_to(root): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def test_each_role_is_a_complete_hf_folder(tiny_models):
    for role in ROLES:
        folder = getattr(tiny_models, role)
        for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
            assert (folder / name).is_file(), f"{role} lacks {name}"
        config = json.loads((folder / "config.json").read_text())
        assert config["architectures"] == [ARCHITECTURES[role]]
        assert config["pad_token_id"] == 0


def test_configs_follow_the_spec(tiny_models):
    config = json.loads((tiny_models.policy / "config.json").read_text())
    spec = TinyModelSpec()
    assert config["vocab_size"] == spec.vocab_size
    assert config["hidden_size"] == spec.hidden_size
    assert config["num_hidden_layers"] == spec.num_layers
    assert config["num_key_value_heads"] == spec.num_heads
    assert config["tie_word_embeddings"] is False
    for role in ("value", "reward"):
        assert json.loads((getattr(tiny_models, role) / "config.json").read_text())["id2label"] == {"0": "LABEL_0"}


def test_policy_embeddings_are_untied(tiny_models):
    policy = weights(tiny_models.policy)
    assert not torch.equal(policy["model.embed_tokens.weight"], policy["lm_head.weight"])


def test_value_backbone_is_the_policy_backbone_and_reward_is_independent(tiny_models):
    policy, value, reward = (weights(getattr(tiny_models, role)) for role in ROLES)
    backbone = [name for name in policy if name.startswith("model.")]
    assert all(torch.equal(policy[name], value[name]) for name in backbone)
    assert not torch.equal(policy["model.embed_tokens.weight"], reward["model.embed_tokens.weight"])
    assert value["score.weight"].shape == (1, TinyModelSpec().hidden_size)
    assert reward["score.weight"].shape == (1, TinyModelSpec().hidden_size)


def test_weights_have_the_spec_init_std(tiny_models):
    policy = weights(tiny_models.policy)
    assert policy["lm_head.weight"].std().item() == pytest.approx(TinyModelSpec().init_std, rel=0.02)
    assert torch.equal(policy["model.norm.weight"], torch.ones(TinyModelSpec().hidden_size))


def test_same_spec_gives_byte_identical_folders(tiny_models, tmp_path):
    again = build_tiny_models(TinyModelSpec(), tmp_path / "again")
    assert files_of(again.root) == files_of(tiny_models.root)


def test_another_seed_gives_other_weights(tmp_path):
    first = build_tiny_models(SMALL, tmp_path / "first")
    second = build_tiny_models(dataclasses.replace(SMALL, seed=1), tmp_path / "second")
    for role in ROLES:
        a, b = weights(getattr(first, role)), weights(getattr(second, role))
        assert not torch.equal(a["model.embed_tokens.weight"], b["model.embed_tokens.weight"])


def test_building_leaves_the_global_torch_rng_alone(tmp_path):
    before = torch.random.get_rng_state()
    build_tiny_models(SMALL, tmp_path / "models")
    assert torch.equal(torch.random.get_rng_state(), before)


def test_a_finished_build_of_the_same_spec_is_reused(tiny_models):
    stamps = {path: path.stat().st_mtime_ns for path in tiny_models.root.rglob("*")}
    assert build_tiny_models(TinyModelSpec(), tiny_models.root) == tiny_models
    assert {path: path.stat().st_mtime_ns for path in tiny_models.root.rglob("*")} == stamps


def test_a_build_leaves_no_staging_folder_behind(tmp_path):
    build_tiny_models(SMALL, tmp_path / "models")
    assert [path.name for path in tmp_path.iterdir()] == ["models"]
    assert (tmp_path / "models" / SPEC_MARKER).is_file()


def test_an_empty_existing_folder_is_built_into(tmp_path):
    (tmp_path / "models").mkdir()
    paths = build_tiny_models(SMALL, tmp_path / "models")
    assert (paths.policy / "model.safetensors").is_file()


def test_a_build_of_another_spec_is_not_overwritten(tmp_path):
    build_tiny_models(SMALL, tmp_path / "models")
    other = dataclasses.replace(SMALL, seed=1)
    with pytest.raises(FileExistsError, match="another spec"):
        build_tiny_models(other, tmp_path / "models")


def test_a_folder_with_other_files_is_not_overwritten(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="other files"):
        build_tiny_models(SMALL, tmp_path / "models")


def test_head_dim_below_32_is_rejected_for_vllm_cpu():
    with pytest.raises(ValueError, match="vLLM's CPU backend needs head_dim >= 32"):
        TinyModelSpec(hidden_size=64, num_heads=4)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hidden_size": 100, "num_heads": 3}, "not divisible by num_heads"),
        ({"num_heads": 4, "num_kv_heads": 3}, "not divisible by num_kv_heads"),
    ],
)
def test_inconsistent_head_counts_are_rejected(fields, message):
    with pytest.raises(ValueError, match=message):
        TinyModelSpec(**fields)


def test_kv_heads_default_to_attention_heads():
    assert TinyModelSpec(num_heads=2).num_kv_heads == 2
    assert TinyModelSpec(num_heads=4, num_kv_heads=2).num_kv_heads == 2
