"""The checks of the model folders a run loads, made on the driver before any actor starts: what each
problem says, and that they read so little that each takes a fraction of a second."""

import contextlib
import json
import shutil
import time
from pathlib import Path

import pytest

from rlhf_ray.models.checks import ModelFolder, ModelFolderError, check_model_folders, check_role_folders
from rlhf_ray.models.paths import resolve_model_paths
from tests.support.tiny_roles import TINY_MODELS, role_config


@contextlib.contextmanager
def fails_fast(seconds: float = 2.0):
    """Expects a ``ModelFolderError`` within ``seconds``; yields pytest's record of it."""
    start = time.perf_counter()
    with pytest.raises(ModelFolderError) as error:
        yield error
    assert time.perf_counter() - start < seconds


def copy_model(source: str, dest: Path, **config_changes) -> Path:
    """A copy of the model folder ``source`` whose config.json has ``config_changes``."""
    shutil.copytree(source, dest)
    config = json.loads((dest / "config.json").read_text())
    (dest / "config.json").write_text(json.dumps(config | config_changes))
    return dest


def test_the_tiny_models_pass_in_a_fraction_of_a_second(tiny_dir, tiny_paths):
    start = time.perf_counter()
    check_role_folders(role_config(tiny_dir), tiny_paths.folders)
    assert time.perf_counter() - start < 2.0


def test_a_missing_folder_is_named_with_the_field_that_chose_it(tiny_dir):
    # Without tiny models the critic and the reference default to the policy's folder.
    no_tiny = role_config(
        tiny_dir,
        models={"tiny": None, "policy": {"path": "/nonexistent/policy"}},
        reward={"source": "function", "function": "rlhf_ray.rewards.demo:concise"},
    )
    with fails_fast() as error:
        resolve_model_paths(no_tiny)
    assert str(error.value).startswith(
        "models.policy.path: the policy model folder /nonexistent/policy does not exist; pass a local HF model folder"
    )
    with fails_fast() as error:
        resolve_model_paths(role_config(tiny_dir, models={"reference": {"path": "/nope"}}))
    assert str(error.value).startswith("models.reference.path: the reference model folder /nope does not exist")


def test_a_folder_that_holds_no_hf_model(tmp_path, tiny_paths):
    policy = ModelFolder("policy", "models.policy.path", tiny_paths.policy)

    def problem(folder: Path) -> str:
        with fails_fast() as error:
            check_model_folders([ModelFolder("policy", "models.policy.path", str(folder))], tokenizer=policy)
        return str(error.value).removeprefix(f"models.policy.path: the policy model folder {folder} ")

    (tmp_path / "empty").mkdir()
    assert problem(tmp_path / "empty") == "is not an HF model folder: it has no config.json"
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    (unreadable / "config.json").write_text("{")
    assert problem(unreadable).startswith("has a config.json transformers cannot read:")
    no_weights = copy_model(tiny_paths.policy, tmp_path / "no_weights")
    (no_weights / "model.safetensors").unlink()
    assert problem(no_weights) == (
        "has no weights: none of model.safetensors, model.safetensors.index.json, pytorch_model.bin, "
        "pytorch_model.bin.index.json"
    )
    truncated = copy_model(tiny_paths.policy, tmp_path / "truncated")
    (truncated / "model.safetensors").write_bytes(b"\x10")
    assert problem(truncated).startswith("has an unreadable model.safetensors:")


def test_a_tokenizer_whose_ids_do_not_fit_a_model(tmp_path, tiny_dir, tiny_paths):
    narrow = copy_model(tiny_paths.critic, tmp_path / "narrow_critic", vocab_size=256)
    with fails_fast() as error:
        resolve_model_paths(role_config(tiny_dir, models={"critic": {"path": str(narrow)}}))
    assert str(error.value) == (
        f"models.critic.path: the critic model folder {narrow} has an embedding of 256 tokens (vocab_size in "
        f"config.json), but the tokenizer of {tiny_paths.policy}, which the run tokenises with, has "
        f"{TINY_MODELS['vocab_size']}: token ids up to {TINY_MODELS['vocab_size'] - 1} would index past the "
        "embedding; use the tokenizer the model was trained with"
    )


def test_a_reward_model_needs_its_score_head_and_a_critic_does_not(tiny_dir, tiny_paths):
    # A critic may start from a causal LM (its value head starts at zero); a reward model may not.
    resolve_model_paths(role_config(tiny_dir, models={"critic": {"path": tiny_paths.policy}}))
    with fails_fast() as error:
        resolve_model_paths(role_config(tiny_dir, models={"reward": {"path": tiny_paths.policy}}))
    assert str(error.value) == (
        f"models.reward.path: the reward model folder {tiny_paths.policy} has no score head: its weights "
        "(LlamaForCausalLM) lack score.weight, so every reward would be 0; pass a reward model trained to score "
        "sequences (`rlhf-ray rm` exports one)"
    )
