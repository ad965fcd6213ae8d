"""Joining a Ray cluster: an address nobody answers fails in seconds, naming the address and where it came
from, instead of ``ray.init`` retrying for minutes."""

import time

import pytest
import ray

from rlhf_ray.distributed.cluster import ClusterUnreachableError, connect
from tests.support.tiny_roles import role_config


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()  # connect() keeps a cluster it is already connected to


def test_an_address_nobody_answers_fails_in_seconds_naming_it(tmp_path, closed_port):
    address = f"127.0.0.1:{closed_port}"
    start = time.monotonic()
    with pytest.raises(ClusterUnreachableError) as error:
        connect(role_config(tmp_path, resources={"ray_address": address}))
    assert time.monotonic() - start < 1.0
    assert str(error.value) == (
        f"resources.ray_address={address}: cannot reach a Ray cluster there (Connection refused): is its head "
        "running (`ray start --head`), and is the port open from this machine? Unset resources.ray_address to "
        "start a local cluster"
    )
    assert not ray.is_initialized()


def test_the_address_may_come_from_the_environment_or_be_a_ray_client_address(tmp_path, closed_port, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{closed_port}")
    with pytest.raises(ClusterUnreachableError, match=f"^RAY_ADDRESS=127.0.0.1:{closed_port}: cannot reach"):
        connect(role_config(tmp_path))
    client = f"ray://127.0.0.1:{closed_port}"
    with pytest.raises(ClusterUnreachableError, match=f"^resources.ray_address={client}: cannot reach"):
        connect(role_config(tmp_path, resources={"ray_address": client}))


def test_a_job_server_url_or_an_address_without_port_is_not_a_cluster_address(tmp_path):
    with pytest.raises(ClusterUnreachableError) as error:
        connect(role_config(tmp_path, resources={"ray_address": "http://127.0.0.1:8265"}))
    assert str(error.value) == (
        "resources.ray_address=http://127.0.0.1:8265 is a dashboard or job server URL; give the cluster's address, "
        "HEAD:6379 (or submit to the job server with `rlhf-ray submit --address`)"
    )
    with pytest.raises(ClusterUnreachableError, match="resources.ray_address=10.0.0.1 has no port: give the clus"):
        connect(role_config(tmp_path, resources={"ray_address": "10.0.0.1"}))
