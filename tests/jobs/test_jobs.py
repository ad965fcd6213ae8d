"""`rlhf-ray submit` and `rlhf-ray jobs` against a real Ray head on loopback, started by
cluster/local_cluster.sh with token authentication, its own ports and temp dir; the job runs the
shortened CPU demo with the cluster's existing environment."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
ROOT = Path(__file__).resolve().parents[2]
RLHF_RAY = Path(sys.executable).with_name("rlhf-ray")
SHORT_DEMO = [
    "configs/cpu_demo.yaml",
    "train.max_steps=2",
    "data.prompts_per_step=4",
    "train.policy.global_batch_size=16",
    "train.policy.micro_batch_size=16",
    "train.critic.global_batch_size=16",
    "train.critic.micro_batch_size=16",
    "checkpoint.export_dir=null",
    # The demo's relative output folders land in the job's copy of the working directory, which the
    # first test looks into.
    "--allow-relative-outputs",
]
SECRET = secrets.token_hex(20)  # looks like a W&B key
HEAD_START_S = 120


@dataclass
class Head:
    address: str
    token: str
    temp_dir: Path


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture(scope="module")
def head():
    """A one-node cluster (4 logical CPUs, as the demo's roles ask) for the module's tests."""
    token = secrets.token_hex(16)
    temp_dir = Path(tempfile.mkdtemp(prefix="rr-", dir="/tmp"))  # short: Ray's socket paths must fit
    gcs, dashboard, client, agent = free_ports(4)
    env = {**client_env(token), "RAY_HEAD_PORT": str(gcs), "RAY_DASHBOARD_PORT": str(dashboard)}
    options = ["--block", "--num-cpus", "4", "--temp-dir", str(temp_dir)]
    options += ["--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent)]
    with open(temp_dir / "head.log", "w") as log:
        process = subprocess.Popen(
            ["bash", "cluster/local_cluster.sh", "start", *options],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        wait_for_job_server(address, token, process)
        yield Head(address, token, temp_dir)
    finally:
        stop_process_group(process)
        shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for_job_server(address: str, token: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + HEAD_START_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{address}/api/version", headers={"Authorization": f"Bearer {token}"}).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the Ray head did not start (exit code {process.poll()})")


def stop_process_group(process: subprocess.Popen) -> None:
    """Kill the head's processes, all started in the script's session; workers exit with their raylet."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def client_env(token: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    if token is None:
        env["RAY_AUTH_MODE"] = "disabled"
    else:
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    return env | extra


def rlhf_ray(head: Head, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``rlhf-ray ARGS --address HEAD`` from the repository root, by default with the cluster's token."""
    return subprocess.run(
        [str(RLHF_RAY), *args, "--address", head.address],
        cwd=ROOT,
        env=env or client_env(head.token),
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_a_missing_or_wrong_token_is_refused_with_what_to_do(head):
    missing = rlhf_ray(head, "jobs", "list", env=client_env(None))
    assert missing.returncode == 1
    assert f"the Ray job server at {head.address} requires a token: set RAY_AUTH_MODE=token" in missing.stderr
    wrong = rlhf_ray(head, "jobs", "list", env=client_env("not-the-cluster-token"))
    assert wrong.returncode == 1
    assert f"the Ray job server at {head.address} rejected the token" in wrong.stderr


def test_a_submitted_demo_succeeds_with_its_logs_and_the_key_stays_secret(head):
    with_key = client_env(head.token, WANDB_API_KEY=SECRET)
    submitted = rlhf_ray(head, "submit", *SHORT_DEMO, "--env", "WANDB_API_KEY", "--follow", env=with_key)
    assert submitted.returncode == 0, submitted.stderr[-4000:] + submitted.stdout[-4000:]
    job_id = submitted.stdout.splitlines()[0]
    assert job_id.startswith("raysubmit_")
    assert "forwarded (sealed): WANDB_API_KEY" in submitted.stderr
    assert f"{job_id}: SUCCEEDED" in submitted.stderr
    # The followed logs: the entrypoint opened the sealed key, and the run finished.
    assert "forwarded environment variables: WANDB_API_KEY" in submitted.stdout
    assert "trained 2 steps" in submitted.stdout

    assert rlhf_ray(head, "jobs", "status", job_id).stdout.startswith(f"{job_id}: SUCCEEDED")
    assert "trained 2 steps" in rlhf_ray(head, "jobs", "logs", job_id).stdout
    [listed] = [line for line in rlhf_ray(head, "jobs", "list").stdout.splitlines() if line.startswith(job_id)]
    assert "SUCCEEDED" in listed and "configs/cpu_demo.yaml" in listed

    # The job ran in the uploaded working directory, which left the environment and history behind.
    packages = head.temp_dir / "session_latest/runtime_resources/working_dir_files"
    [unpacked] = [path for path in packages.glob("_ray_pkg_*") if path.is_dir()]
    assert (unpacked / "rlhf_ray/jobs/entrypoint.py").is_file() and (unpacked / "outputs/cpu_demo").is_dir()
    assert not (unpacked / ".venv").exists() and not (unpacked / ".git").exists()

    assert SECRET not in submitted.stdout + submitted.stderr
    # Ray logs every runtime environment it sets up; the cluster's files (logs, the unpacked working
    # directory and the run's outputs in it) hold the key only sealed.
    holding = [path for path in head.temp_dir.rglob("*") if path.is_file() and SECRET.encode() in path.read_bytes()]
    assert holding == []


def test_a_submitted_job_can_be_stopped(head):
    submitted = rlhf_ray(head, "submit", *SHORT_DEMO)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    stopped = rlhf_ray(head, "jobs", "stop", job_id)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"{job_id}: STOPPED"
    assert rlhf_ray(head, "jobs", "status", job_id).stdout.startswith(f"{job_id}: STOPPED")
