"""A reward served over HTTP end to end: `rlhf-ray reward-server` (Ray Serve) on loopback scores as the
reward role does in this process, and a PPO run with ``reward.source: http`` gets exactly a server's
scores."""

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import torch

from rlhf_ray.config.device import DeviceProfile
from rlhf_ray.config.schema import RewardServerConfig
from rlhf_ray.data import pack_sequences
from rlhf_ray.data.records import token_ids
from rlhf_ray.models import load_tokenizer
from rlhf_ray.rewards.demo import concise
from rlhf_ray.rewards.http import RewardClient
from rlhf_ray.workers import RewardModelWorker
from tests.support.scripted_server import ScriptedServer
from tests.support.tiny_roles import role_config
from tests.trainers.test_ppo_e2e import metrics, run_train

pytestmark = pytest.mark.slow
RLHF_RAY = Path(sys.executable).with_name("rlhf-ray")
ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def reward_server(target: str, port: int):
    """The server in its own process (and Ray cluster) until the block ends; yields its URL."""
    server = subprocess.Popen(
        [str(RLHF_RAY), "reward-server", target, "--port", str(port), "--max-batch-size", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        ready = f"serving {target} at http://127.0.0.1:{port}/"
        lines = []
        while not (lines and lines[-1].startswith(ready)):
            line = server.stdout.readline()
            assert line, "the server ended:\n" + "".join(lines)
            lines.append(line)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)


def test_a_served_reward_model_scores_as_the_reward_role_does(tiny_dir, tiny_paths, closed_port):
    prompts = ["Tell me about cats.", "Why is the sky blue?", "Hi", "Name a river."]
    responses = ["Cats purr.", "Light scatters in the air, blue the most.", "Hello!", "The Danube"]
    with reward_server(str(tiny_paths.reward), closed_port) as url:
        served = RewardClient(RewardServerConfig(url=url, batch_size=3, max_concurrency=2)).scores(
            {"prompts": prompts, "responses": responses, "labels": [None] * 4}
        )
        malformed = httpx.post(url, json={"prompts": ["a"], "responses": []})
    tokenizer = load_tokenizer(tiny_paths.reward, "left")
    batch = pack_sequences(
        [token_ids(tokenizer, p) for p in prompts],
        [token_ids(tokenizer, r + tokenizer.eos_token) for r in responses],
        tokenizer.pad_token_id,
    )
    cfg = role_config(tiny_dir, models={"reward": {"dtype": "float32", "zero_stage": 0}})
    worker = RewardModelWorker(cfg, rank=0, world_size=1, device=DeviceProfile("cpu"))
    worker.setup(str(tiny_paths.reward))
    in_process = worker.scores(batch)
    assert in_process.std() > 0
    torch.testing.assert_close(served, in_process, atol=1e-5, rtol=1e-5)
    assert malformed.status_code == 422 and "1 prompts, but responses has 0" in malformed.text


def concise_scores(body, attempt):
    return 200, {"scores": concise(body["prompts"], body["responses"], body["labels"])}


@pytest.mark.vllm
def test_ppo_against_a_reward_server_gets_its_scores(tmp_path):
    server = ScriptedServer(concise_scores)  # a plain server: any that speaks the protocol will do
    try:
        run_train(
            tmp_path,
            "train.max_steps=2",
            "reward.source=http",
            "reward.function=null",
            f"reward.server.url={server.url}",
            "reward.gold_function=rlhf_ray.rewards.demo:concise",  # the same function, in the driver
            "checkpoint.export_dir=null",
            "logging.wandb.mode=disabled",
        )
    finally:
        server.close()
    by_step = metrics(tmp_path)
    assert sorted(by_step) == [1, 2]
    assert len(server.requests) == 2  # a step's 64 samples, one request (reward.server.batch_size)
    for step in by_step.values():
        assert step["rollout/reward_mean"] == pytest.approx(step["rollout/gold_reward"], abs=1e-6)
        assert 0 < step["rollout/reward_mean"] <= 1
