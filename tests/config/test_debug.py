"""Debug mode: a config shrunk to a quick local run of every role, verbose, with Ray's debugger on."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlhf_ray.cli import main
from rlhf_ray.config import ROLE_NAMES
from rlhf_ray.config.debug import debug_overlay, load_debug_config
from rlhf_ray.tracking import Tracker
from tests.support.tiny_roles import role_config

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "cpu_demo.yaml"
CONVERSATION = ROOT / "configs" / "cpu_conversation.yaml"
RLHF_RAY = Path(sys.executable).with_name("rlhf-ray")


def test_the_demo_in_debug_mode_is_small_local_verbose_and_debuggable():
    cfg = load_debug_config(DEMO, [])  # this machine has no GPU
    assert (cfg.train.max_steps, cfg.data.prompts_per_step, cfg.rollout.samples_per_prompt) == (2, 4, 4)
    for train in (cfg.train.policy, cfg.train.critic):
        assert (train.global_batch_size, train.micro_batch_size) == (16, 16)
    res = cfg.resources
    assert (res.device, res.ray_address, res.num_nodes, res.num_cpus) == ("cpu", "local", 1, None)
    assert all((res.role(role).num_nodes, res.role(role).gpus_per_node) == (1, 1) for role in ROLE_NAMES)
    assert (cfg.rollout.num_engines, cfg.rollout.num_nodes) == (1, None)
    assert res.env_vars == {"RAY_DEBUG": "legacy"}
    assert cfg.logging.verbose and cfg.logging.dir == "outputs/debug/cpu_demo/logs"
    assert (cfg.checkpoint.dir, cfg.checkpoint.resume) == ("outputs/debug/cpu_demo/checkpoints", "never")
    assert cfg.checkpoint.export_dir is None


def test_command_line_overrides_apply_on_top_of_the_overlay():
    cfg = load_debug_config(DEMO, ["train.max_steps=5", "resources.env_vars.RAY_DEBUG_POST_MORTEM='1'"])
    assert cfg.train.max_steps == 5
    assert cfg.resources.env_vars == {"RAY_DEBUG": "legacy", "RAY_DEBUG_POST_MORTEM": "1"}


def test_validate_shows_the_debug_run_with_overrides_after_the_flag(capsys):
    assert main(["validate", str(DEMO), "--debug", "train.max_steps=3"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["train"]["max_steps"] == 3
    assert resolved["logging"]["verbose"] is True and resolved["resources"]["ray_address"] == "local"


@pytest.mark.parametrize("recipe", ["qwen2.5-1.5b_ppo_1node", "qwen2.5-1.5b_grpo_1node", "llama3.1-8b_ppo_4node"])
def test_a_gpu_cluster_recipe_shrinks_to_a_valid_cpu_run(recipe):
    cfg = load_debug_config(ROOT / "configs" / f"{recipe}.yaml", [])
    assert (cfg.resources.device, cfg.resources.num_nodes, cfg.rollout.num_engines) == ("cpu", 1, 1)
    samples = cfg.data.prompts_per_step * cfg.rollout.samples_per_prompt
    assert cfg.data.prompts_per_step <= 4 and cfg.train.max_steps == 2
    # One rank of each role, all in one process (the recipe's own colocation groups were for GPUs).
    assert cfg.resources.colocate == [cfg.active_roles()] and cfg.resources.shared_processes
    assert cfg.rollout.weight_sync == "in_process"  # on-policy: the engine in that process too
    for role in cfg.active_roles():
        assert cfg.resources.role(role).world_size == 1
        if role in ("policy", "critic"):
            train = getattr(cfg.train, role)
            assert train.global_batch_size == samples and not (train.offload_optimizer or train.offload_params)


def test_an_engine_generating_ahead_keeps_a_process_of_its_own():
    off_policy = ["rollout.async_steps=1", "algorithm.rollout_correction.mode=tis"]
    cfg = load_debug_config(ROOT / "configs" / "qwen2.5-1.5b_grpo_1node.yaml", off_policy)
    assert cfg.resources.shared_processes and cfg.rollout.weight_sync == "broadcast"


def test_on_a_gpu_machine_the_roles_keep_the_gpus():
    overlay = debug_overlay(load_debug_config(DEMO, []), local_gpus=2)
    assert "resources.device" not in overlay and overlay["resources.gpus_per_node"] == 2
    assert "resources.colocate" not in overlay and "resources.shared_processes" not in overlay


def test_verbose_logging_prints_each_steps_phase_timings(tmp_path, capsys):
    def log_a_step(verbose: bool) -> str:
        cfg = role_config(tmp_path, logging={"dir": str(tmp_path), "wandb": {"mode": "disabled"}, "verbose": verbose})
        tracker = Tracker(cfg, "run", total_steps=3)
        tracker.log(2, {"timing/generate": 1.5, "timing/step": 2.25, "timing/generated_tokens_per_s": 80.0})
        tracker.finish()
        return capsys.readouterr().out

    assert "step 2 phases (s): generate 1.50  step 2.25\n" in log_a_step(verbose=True)
    assert "phases" not in log_a_step(verbose=False)


@pytest.mark.slow
@pytest.mark.vllm
def test_the_conversation_demo_runs_in_debug_mode_on_a_local_cluster(tmp_path):
    # A RAY_ADDRESS pointing elsewhere must not matter: debug mode starts its own local cluster.
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:1"}
    command = [str(RLHF_RAY), "train", str(CONVERSATION), "--debug"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "trained 2 steps" in result.stdout
    assert "step 1 phases (s): generate" in result.stdout and "step 2 phases (s): generate" in result.stdout
    [metrics] = (tmp_path / "outputs/debug/cpu_conversation/logs").glob("*.metrics.jsonl")
    steps = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [step["step"] for step in steps] == [1, 2] and all(step["rollout/turns"] == 3.0 for step in steps)
    assert not (tmp_path / "outputs/cpu_conversation").exists()  # the demo's own outputs are untouched
