"""What `rlhf-ray submit` sends, and the errors it and `rlhf-ray jobs` give before reaching a cluster."""

import json
import shlex
import time
from pathlib import Path

import pytest

from rlhf_ray.cli import main
from rlhf_ray.config import load_config
from rlhf_ray.jobs.sealed_env import SEALED_ENV_VAR, SealError, seal, unseal
from rlhf_ray.jobs.submission import SubmitError, job_spec, relative_outputs

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "cpu_demo.yaml"
SECRET = "0123456789abcdef0123456789abcdef01234567"


def spec(pip=None, forward=(), environ=None, token=None, config=DEMO, working_dir=ROOT):
    return job_spec(config, ["train.max_steps=2"], working_dir, pip, forward, environ or {}, token)


def test_the_job_trains_the_config_from_the_uploaded_working_directory():
    job = spec()
    assert shlex.split(job.entrypoint) == [
        "python", "-m", "rlhf_ray.jobs.entrypoint", "train", "configs/cpu_demo.yaml", "train.max_steps=2",
    ]  # fmt: skip
    assert job.runtime_env["working_dir"] == str(ROOT)
    assert {".git", ".venv", ".cache", "outputs"} <= set(job.runtime_env["excludes"])
    # The cluster's own environment: nothing to install, no variables.
    assert set(job.runtime_env) == {"working_dir", "excludes"}


def test_pip_mode_installs_a_requirements_file(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("rich==15.0.0\n")
    assert spec(pip=requirements).runtime_env["pip"] == str(requirements)
    with pytest.raises(SubmitError, match=r"--pip .*missing.txt: no such requirements file"):
        spec(pip=tmp_path / "missing.txt")


def test_the_config_must_be_inside_the_working_directory():
    with pytest.raises(SubmitError, match=r"cpu_demo.yaml is outside the working directory .*rlhf_ray, which is all"):
        spec(working_dir=ROOT / "rlhf_ray")


def test_forwarded_variables_are_sealed_with_the_cluster_token():
    job = spec(forward=["WANDB_API_KEY"], environ={"WANDB_API_KEY": SECRET, "OTHER": "x"}, token="cluster-token")
    assert SECRET not in json.dumps(job.runtime_env) and SECRET not in job.entrypoint
    assert job.forwarded == ("WANDB_API_KEY",)
    assert unseal(job.runtime_env["env_vars"][SEALED_ENV_VAR], "cluster-token") == {"WANDB_API_KEY": SECRET}
    with pytest.raises(SealError, match="sealed with another cluster's token"):
        unseal(job.runtime_env["env_vars"][SEALED_ENV_VAR], "another-token")
    with pytest.raises(SealError, match="no Ray auth token to open them"):
        unseal(seal({"A": "b"}, "cluster-token"), None)


def test_forwarding_needs_the_variable_and_token_authentication():
    with pytest.raises(SubmitError, match="--env WANDB_API_KEY: not set in your environment"):
        spec(forward=["WANDB_API_KEY"], token="cluster-token")
    with pytest.raises(SubmitError, match="--env WANDB_API_KEY needs Ray token authentication: set RAY_AUTH_MODE"):
        spec(forward=["WANDB_API_KEY"], environ={"WANDB_API_KEY": SECRET})


def test_an_invalid_config_is_reported_before_contacting_the_cluster(tmp_path, closed_port, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text(DEMO.read_text().replace("temperature: 1.0", "temperature: hot"))
    assert main(["submit", str(broken), "--address", f"http://127.0.0.1:{closed_port}"]) == 2
    err = capsys.readouterr().err
    assert "rollout.temperature: Input should be a valid number" in err
    assert "cannot reach" not in err


def test_an_unreachable_job_server_is_named_in_seconds(closed_port, capsys):
    address = f"http://127.0.0.1:{closed_port}"
    start = time.monotonic()
    assert main(["jobs", "list", "--address", address]) == 1
    assert time.monotonic() - start < 5
    assert f"cannot reach the Ray job server at {address} (Connection refused)" in capsys.readouterr().err


SHARED_OUTPUTS = [
    "checkpoint.dir=/shared/cpu_demo/checkpoints",
    "checkpoint.export_dir=/shared/cpu_demo/policy",
    "logging.dir=/shared/cpu_demo/logs",
]


def test_relative_output_folders_are_refused_before_anything_is_sent(closed_port, capsys):
    address = ["--address", f"http://127.0.0.1:{closed_port}"]
    assert main(["submit", str(DEMO), *address]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "rlhf-ray submit: checkpoint.dir=outputs/cpu_demo/checkpoints, checkpoint.export_dir=outputs/cpu_demo/policy, "
        "logging.dir=outputs/cpu_demo/logs would be written into the job's temporary copy of the working directory "
        "on the cluster and lost with it, and a resubmitted job could not count on resuming from its checkpoints: "
        "give absolute folders on storage every node shares (e.g. the override "
        "checkpoint.dir=/shared/cpu_demo/checkpoints), or pass --allow-relative-outputs to submit anyway"
    )
    assert "cannot reach" not in err
    # Allowed, with a warning; then the submission goes on (to a server that is not there).
    assert main(["submit", str(DEMO), "train.max_steps=2", "--allow-relative-outputs", *address]) == 1
    warning, unreachable = capsys.readouterr().err.splitlines()
    assert warning == (
        "rlhf-ray submit: warning: checkpoint.dir=outputs/cpu_demo/checkpoints, checkpoint.export_dir="
        "outputs/cpu_demo/policy, logging.dir=outputs/cpu_demo/logs would be written into the job's temporary copy "
        "of the working directory on the cluster, and may be deleted with it"
    )
    assert unreachable.startswith("error: cannot reach the Ray job server")


def test_absolute_output_folders_pass_the_check_overrides_included(closed_port, capsys):
    # The overrides are part of the config checked (and of the job): with absolute folders and the default
    # checkpoint.resume=auto, the same submission again resumes from the newest checkpoint there.
    cfg = load_config(DEMO, [*SHARED_OUTPUTS, "checkpoint.resume=auto"])
    assert relative_outputs(cfg) == {}
    assert relative_outputs(load_config(DEMO, ["logging.tensorboard_dir=tb"])) == {
        "checkpoint.dir": "outputs/cpu_demo/checkpoints",
        "checkpoint.export_dir": "outputs/cpu_demo/policy",
        "logging.dir": "outputs/cpu_demo/logs",
        "logging.tensorboard_dir": "tb",
    }
    assert main(["submit", str(DEMO), *SHARED_OUTPUTS, "--address", f"http://127.0.0.1:{closed_port}"]) == 1
    assert capsys.readouterr().err.startswith("error: cannot reach the Ray job server")


def test_the_address_must_be_given_and_be_the_job_server_url(monkeypatch, capsys):
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main(["jobs", "status", "raysubmit_1"]) == 1
    assert "no job server: pass --address http://HEAD:8265" in capsys.readouterr().err
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert main(["jobs", "status", "raysubmit_1"]) == 1
    assert "'10.0.0.1:6379' is not a job server URL" in capsys.readouterr().err
