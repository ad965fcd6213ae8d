import json
import shutil

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

from rlhf_ray.models import (
    build_tokenizer,
    load_causal_lm,
    load_sequence_score_model,
    load_tokenizer,
    load_value_model,
)

TEXTS = ["Hello", "The cat sees the dog near the river.", "What is 3 plus 4?"]


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    return load_tokenizer(tiny_models.policy, "right")


def batch(tokenizer, texts, padding_side):
    tokenizer.padding_side = padding_side
    return tokenizer(texts, return_tensors="pt", padding=True)


@pytest.mark.parametrize(
    ("role", "auto_class", "class_name"),
    [
        ("policy", AutoModelForCausalLM, "LlamaForCausalLM"),
        ("value", AutoModelForTokenClassification, "LlamaForTokenClassification"),
        ("reward", AutoModelForSequenceClassification, "LlamaForSequenceClassification"),
    ],
)
def test_folders_load_with_transformers_auto_classes(tiny_models, role, auto_class, class_name):
    folder = getattr(tiny_models, role)
    assert type(auto_class.from_pretrained(folder)).__name__ == class_name
    assert AutoTokenizer.from_pretrained(folder).pad_token_id == 0


@pytest.mark.parametrize("dtype", [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_causal_lm_loads_in_the_asked_dtype(tiny_models, dtype):
    name, torch_dtype = dtype
    model = load_causal_lm(tiny_models.policy, name)
    assert {param.dtype for param in model.parameters()} == {torch_dtype}


def test_unknown_dtype_is_rejected(tiny_models):
    with pytest.raises(ValueError, match="dtype='fp32' is not one of"):
        load_causal_lm(tiny_models.policy, "fp32")


def test_causal_lm_gives_next_token_logits(tiny_models, tokenizer):
    inputs = batch(tokenizer, TEXTS, "right")
    logits = load_causal_lm(tiny_models.policy, "float32")(**inputs).logits
    assert logits.shape == (*inputs["input_ids"].shape, 1024)


def test_value_model_gives_one_value_per_token(tiny_models, tokenizer):
    inputs = batch(tokenizer, TEXTS, "right")
    values = load_value_model(tiny_models.value, "float32")(**inputs).logits[..., 0]
    assert values.shape == inputs["input_ids"].shape
    assert values.std() > 0.1


def test_value_model_from_a_policy_folder_keeps_the_backbone_and_starts_at_zero(tiny_models, tokenizer):
    critic = load_value_model(tiny_models.policy, "float32")
    policy = load_causal_lm(tiny_models.policy, "float32")
    assert torch.equal(critic.model.embed_tokens.weight, policy.model.embed_tokens.weight)
    values = critic(**batch(tokenizer, TEXTS, "right")).logits[..., 0]
    assert torch.equal(values, torch.zeros_like(values))


def test_value_model_has_no_dropout_in_train_mode(tiny_models, tokenizer, tmp_path):
    folder = shutil.copytree(tiny_models.value, tmp_path / "value")
    config = json.loads((folder / "config.json").read_text())
    del config["classifier_dropout"]  # transformers would then drop 10% before the head
    (folder / "config.json").write_text(json.dumps(config))
    critic = load_value_model(folder, "float32")
    inputs = batch(tokenizer, TEXTS, "right")
    critic.train()
    assert torch.equal(critic(**inputs).logits, critic(**inputs).logits)


def test_reward_model_gives_one_score_per_sequence(tiny_models, tokenizer):
    inputs = batch(tokenizer, TEXTS, "right")
    scores = load_sequence_score_model(tiny_models.reward, "float32")(**inputs).logits[:, 0]
    assert scores.shape == (len(TEXTS),)
    assert len(set(scores.tolist())) == len(TEXTS)


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_reward_score_does_not_depend_on_padding(tiny_models, tokenizer, padding_side):
    reward = load_sequence_score_model(tiny_models.reward, "float32")
    padded = reward(**batch(tokenizer, TEXTS, padding_side)).logits[:, 0]
    alone = torch.stack([reward(**batch(tokenizer, [text], padding_side)).logits[0, 0] for text in TEXTS])
    torch.testing.assert_close(padded, alone, rtol=1e-5, atol=1e-5)


def test_score_model_from_a_policy_folder_starts_at_zero(tiny_models, tokenizer):
    scores = load_sequence_score_model(tiny_models.policy, "float32")(**batch(tokenizer, TEXTS, "right")).logits
    assert torch.equal(scores, torch.zeros_like(scores))


def test_causal_lm_from_a_folder_without_its_head_is_rejected(tiny_models):
    with pytest.raises(ValueError, match=r"reference: .* lacks weights for \['lm_head.weight'\]"):
        load_causal_lm(tiny_models.value, "float32", role="reference")


def test_missing_folder_names_the_role_and_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match=f"reference: no folder at {missing}"):
        load_causal_lm(missing, "float32", role="reference")


def test_folder_without_a_config_is_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"critic: .* is not an HF model folder \(no config.json\)"):
        load_value_model(tmp_path, "float32", role="critic")


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_tokenizer_pads_on_the_asked_side(tiny_models, padding_side):
    tokenizer = load_tokenizer(tiny_models.policy, padding_side)
    ids = tokenizer(["a", "a b c d"], padding=True)["input_ids"][0]
    assert (ids[0] if padding_side == "left" else ids[-1]) == tokenizer.pad_token_id == 0


def test_tokenizer_without_pad_token_pads_with_eos(tmp_path):
    bare = build_tokenizer(vocab_size=300)
    bare.pad_token = None
    bare.save_pretrained(tmp_path)
    tokenizer = load_tokenizer(tmp_path, "left")
    assert tokenizer.pad_token == tokenizer.eos_token == "</s>"


def test_unknown_padding_side_is_rejected(tiny_models):
    with pytest.raises(ValueError, match="padding_side='middle'"):
        load_tokenizer(tiny_models.policy, "middle")
