"""The ``rlhf-ray`` command."""

import subprocess
import sys
import time
from pathlib import Path

import yaml

from rlhf_ray.cli import EXIT_CONFIG_ERROR, main

DEMO = Path(__file__).resolve().parents[1] / "configs" / "cpu_demo.yaml"
PIPELINE = DEMO.with_name("cpu_pipeline.yaml")


def test_validate_prints_the_resolved_config(capsys):
    assert main(["validate", str(DEMO), "rollout.temperature=0.5"]) == 0
    out, err = capsys.readouterr()
    resolved = yaml.safe_load(out)
    assert resolved["rollout"]["temperature"] == 0.5
    assert resolved["rollout"]["top_p"] == 1.0  # a default, filled in
    assert "valid; roles: policy, critic, reference, reward" in err


def test_validate_lists_every_problem_and_exits_2(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text(DEMO.read_text().replace("temperature: 1.0", "temperature: hot"))
    assert main(["validate", str(broken), "rollout.top_p=0"]) == EXIT_CONFIG_ERROR
    out, err = capsys.readouterr()
    assert out == ""
    line = next(i for i, text in enumerate(broken.read_text().splitlines(), 1) if "temperature: hot" in text)
    assert f"{broken}:{line}: rollout.temperature: Input should be a valid number" in err
    assert "override 'rollout.top_p=0': rollout.top_p: Input should be greater than 0" in err


def test_validate_names_a_reward_function_parameter_it_cannot_fill_in_seconds(capsys):
    functions = (
        "reward.functions=[{function: rlhf_ray.rewards.demo:concise},"
        " {function: tests.support.reward_functions:needs_a_rubric, weight: 0.5}]"
    )
    start = time.monotonic()
    assert main(["validate", str(DEMO), "reward.function=null", functions]) == EXIT_CONFIG_ERROR
    assert time.monotonic() - start < 5
    assert (
        "reward.functions.1.function: tests.support.reward_functions:needs_a_rubric: parameter 'rubric' cannot be "
        "filled: it is none of prompts, responses, completions, labels, messages, nor a column of the prompt rows"
    ) in capsys.readouterr().err


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("rlhf-ray")
    command = [script, "validate", DEMO, "resources.num_cpus=1", "rollout.weight_sync=broadcast"]  # an engine process
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == EXIT_CONFIG_ERROR
    assert "resources.num_cpus: 1 logical CPUs, but the roles need 2" in result.stderr


def test_a_bad_sft_row_fails_before_anything_starts(tmp_path, capsys):
    data = tmp_path / "demos.jsonl"
    data.write_text('{"prompt": "Hi", "response": "Hello."}\n{"prompt": "Hi"}\n')
    config = tmp_path / "sft.yaml"
    config.write_text(
        "models: {tiny: {vocab_size: 512, hidden_size: 64, intermediate_size: 128, num_layers: 1, num_heads: 2,"
        f" output_dir: {tmp_path / 'tiny'}}}}}\n"
        f"sft: {{data: {{train_path: {data}}}}}\n"
    )
    assert main(["sft", str(config), "resources.device=cpu"]) == EXIT_CONFIG_ERROR
    err = capsys.readouterr().err
    assert f"sft: {data}:2: missing key: no 'response'" in err
    assert "set sft.data.strict: false to skip such rows" in err


def test_a_stage_without_data_is_a_config_error(tmp_path, capsys):
    assert main(["rm", str(DEMO)]) == EXIT_CONFIG_ERROR
    assert "reward_model.data.train_path: is required unless a simulated `labeller` writes the data" in (
        capsys.readouterr().err
    )


def test_dpo_without_an_sft_model_names_what_to_run_or_set(tmp_path, capsys):
    labeller = f"labeller={{output_dir: {tmp_path / 'labels'}}}"
    missing = tmp_path / "no_sft_model"
    assert main(["dpo", str(PIPELINE), labeller, f"sft.checkpoint.export_dir={missing}"]) == EXIT_CONFIG_ERROR
    assert capsys.readouterr().err.strip() == (
        f"dpo: dpo.init_path is not set, so the DPO policy starts from the SFT model at sft.checkpoint.export_dir "
        f"({missing}), which does not exist: run `rlhf-ray sft` first or set dpo.init_path to a model folder"
    )


def test_a_dpo_pipeline_cannot_force_a_stage_it_does_not_run(tmp_path, capsys):
    labeller = f"labeller={{output_dir: {tmp_path / 'labels'}}}"
    assert main(["pipeline", str(PIPELINE), labeller, "pipeline.method=dpo", "--force", "rm"]) == EXIT_CONFIG_ERROR
    assert "pipeline: --force rm: not a stage of pipeline.method dpo (sft, dpo)" in capsys.readouterr().err


RLHF_RAY = Path(sys.executable).with_name("rlhf-ray")


def run_timed(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    result = subprocess.run([RLHF_RAY, *args], capture_output=True, text=True, timeout=300)
    return result, time.monotonic() - start


def test_an_unreachable_cluster_fails_in_seconds_naming_the_address(closed_port):
    address = f"127.0.0.1:{closed_port}"
    result, seconds = run_timed("train", str(DEMO), f"resources.ray_address={address}")
    assert result.returncode == EXIT_CONFIG_ERROR
    assert f"{DEMO}: resources.ray_address={address}: cannot reach a Ray cluster there (Connection refused)" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert seconds < 15


def test_a_missing_model_folder_fails_in_seconds_before_any_cluster_starts_naming_it():
    result, seconds = run_timed("train", str(DEMO), "models.tiny=null", "models.policy.path=/nonexistent/policy")
    assert result.returncode == EXIT_CONFIG_ERROR
    assert f"{DEMO}: models.policy.path: the policy model folder /nonexistent/policy does not exist" in result.stderr
    assert "Traceback" not in result.stderr and "Ray" not in result.stderr
    assert seconds < 15


def sft_config(tmp_path: Path) -> Path:
    data = tmp_path / "demos.jsonl"
    data.write_text('{"prompt": "Hi", "response": "Hello."}\n')
    config = tmp_path / "sft.yaml"
    config.write_text(
        "models: {tiny: {vocab_size: 512, hidden_size: 64, intermediate_size: 128, num_layers: 1, num_heads: 2,"
        f" output_dir: {tmp_path / 'tiny'}}}}}\n"
        f"sft: {{data: {{train_path: {data}}}, train: {{micro_batch_size: 1, global_batch_size: 1}}}}\n"
        "resources: {device: cpu}\n"
    )
    return config


def test_a_stage_checks_its_model_and_checkpoint_folders_before_anything_starts(tmp_path, capsys):
    config = sft_config(tmp_path)
    assert main(["sft", str(config), "sft.init_path=/nonexistent/sft"]) == EXIT_CONFIG_ERROR
    assert capsys.readouterr().err == (
        "sft: sft.init_path: the sft model folder /nonexistent/sft does not exist; pass a local HF model folder "
        "(hub ids are not downloaded: fetch the model first, e.g. with `hf download`, and pass its folder)\n"
    )
    (tmp_path / "a_file").write_text("")
    unwritable = tmp_path / "a_file" / "checkpoints"
    assert main(["sft", str(config), f"sft.checkpoint.dir={unwritable}"]) == EXIT_CONFIG_ERROR
    # (after the progress bar of the tiny models' build)
    last_line = capsys.readouterr().err.splitlines()[-1]
    assert last_line.startswith(f"sft: sft.checkpoint.dir: cannot write checkpoints to {unwritable}: Not a directory")
