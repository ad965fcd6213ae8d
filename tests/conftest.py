"""Shared by every test: offline, no Ray token auth, W&B offline; a local Ray cluster and tiny models
for the tests that start roles."""

import contextlib
import os
import socket
import sys

import pytest

# Set before anything imports transformers, ray or wandb.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from rlhf_ray.models.paths import resolve_model_paths  # noqa: E402
from tests.support.random_tensors import gen, randn, random_mask  # noqa: E402, F401  (fixtures)
from tests.support.tiny_roles import role_config  # noqa: E402


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def tiny_paths(tiny_dir):
    return resolve_model_paths(role_config(tiny_dir))


@contextlib.contextmanager
def simulated_cluster(nodes: int, cpus_per_node: int):
    """``nodes`` simulated Ray nodes on this machine (``ray.cluster_utils.Cluster``), the driver connected."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus_per_node})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=cpus_per_node)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def local_ray():
    """A local cluster declaring more logical CPUs than cores, so every role fits on 2 cores."""
    ray.init(address="local", num_cpus=8, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def _no_shared_wandb_service():
    """A W&B run started in the test process leaves WANDB_SERVICE set: the runs later tests start in
    subprocesses would attach to that service and write nothing of their own."""
    yield
    os.environ.pop("WANDB_SERVICE", None)


_session_exit_status = None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    global _session_exit_status
    _session_exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """End the test process with pytest's exit status once pytest is done, without the interpreter's
    teardown: once, after every test had passed, a thread of a native library (the process had held
    torch, vLLM, Ray and tokenizers in-process) jumped into freed memory while the interpreter shut down,
    and the segfault made a green run exit 139. The runs the tests start in subprocesses exit normally."""
    if _session_exit_status is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_session_exit_status)
