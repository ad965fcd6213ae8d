"""Runs that survive failures, end to end on the CPU demo (real Ray, DeepSpeed and vLLM): ranks and an
engine killed mid-run and recovered, the driver killed during a checkpoint write and resumed, SIGTERM
and resume. Each run's metrics must equal an uninterrupted run's (fp32, on-policy: the replay is
deterministic). Every run gives each role a process of its own: a fault names a role's rank, and a
process's thread count changes fp32 rounding (about 1e-6), so all runs share the layout."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from rlhf_ray.config import EXIT_RESUMABLE
from tests.trainers.test_ppo_e2e import FP32, ON_POLICY, metrics, run_train, train_command

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
COMMON = [
    *FP32,
    *ON_POLICY,
    "train.max_steps=6",
    "checkpoint.interval=3",
    "checkpoint.export_dir=null",
    "logging.wandb.mode=disabled",
    # The adaptive coefficient moves every step, so its state must survive too.
    "algorithm.kl.controller=adaptive",
    "algorithm.kl.target=1.0",
    "algorithm.kl.horizon=100",
    "resources.shared_processes=false",
    "rollout.weight_sync=broadcast",  # an engine in a process of its own, which dies and restarts alone
]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[int, dict[str, float]]:
    workdir = tmp_path_factory.mktemp("uninterrupted")
    run_train(workdir, *COMMON)
    by_step = metrics(workdir)
    assert by_step[6]["train/kl_coef"] != by_step[1]["train/kl_coef"]
    return by_step


def with_faults(workdir: Path, *faults: str) -> dict[str, str]:
    return os.environ | {"RLHF_RAY_FAULTS": ",".join(faults), "RLHF_RAY_FAULT_DIR": str(workdir / "faults")}


def assert_same_run(reference: dict[int, dict], run: dict[int, dict]) -> None:
    assert sorted(run) == sorted(reference)
    for step, record in reference.items():
        for name, value in record.items():
            if not name.startswith(("timing/", "recovery/")):
                assert run[step][name] == pytest.approx(value, rel=1e-6, abs=1e-9), f"step {step}: {name}"


def test_dead_ranks_and_a_dead_engine_are_recovered_and_the_run_is_the_same(tmp_path, uninterrupted):
    # Arrivals count over the whole run, replays included (checkpoints at steps 3 and 6):
    # critic update 2 = step 2, before any checkpoint: start again from the beginning, replaying step 1;
    # reference forward 7 = step 5 (steps 1-2, then 1-5 after the restart): back to step 3, replaying 4;
    # engine generate 10 = step 6 (after 1-2, 1-5 and 4-5): that engine alone restarts, nothing replayed.
    faults = ["critic:0:update:2", "reference:0:logprobs:7", "rollout:0:generate:10"]
    result = run_train(tmp_path, *COMMON, env=with_faults(tmp_path, *faults))
    by_step = metrics(tmp_path)
    assert_same_run(uninterrupted, by_step)
    last = by_step[6]
    assert (last["recovery/restarts"], last["recovery/engine_restarts"], last["recovery/steps_replayed"]) == (2, 1, 2)
    console = result.stdout
    assert "recovery 1 of at most 3: critic rank 0" in console and "died during update" in console
    assert "recovery 2 of at most 3: reference rank 0" in console and "died during forwards" in console
    assert "(its log: " in console and "from the beginning (1 step(s) to replay)" in console
    assert "rollout engine 0 died" in result.stderr
    recoveries = [record["timing/recovery"] for record in by_step.values() if "timing/recovery" in record]
    assert len(recoveries) == 2, recoveries
    print(f"recovery times (s, to the end of the first step after): {recoveries}")


def test_past_max_restarts_the_run_fails_with_one_error_naming_the_rank(tmp_path):
    result = subprocess.run(
        train_command(*COMMON, "resources.max_restarts=0"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        env=with_faults(tmp_path, "critic:0:setup:1"),  # as it loads its model: the quickest failure to reach
    )
    assert result.returncode == 1, result.stderr[-3000:]
    [line] = [line for line in result.stderr.splitlines() if line.startswith("run failed:")]
    assert "critic rank 0 on node" in line and "died during start-up" in line and "(its log: " in line
    assert "resources.max_restarts = 0" in line
    assert "Traceback" not in result.stderr  # shutting down after the failure raised nothing more


def test_sigterm_then_a_driver_killed_writing_a_checkpoint_and_the_run_still_resumes_the_same(tmp_path, uninterrupted):
    # Every run below counts its checkpoint writes together: the stop's is the first, the second kills the driver.
    env = with_faults(tmp_path, "driver:0:checkpoint_write:2")
    driver = subprocess.Popen(
        train_command(*COMMON), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    logs = tmp_path / "outputs/cpu_demo/logs"
    deadline = time.monotonic() + 600
    while driver.poll() is None and time.monotonic() < deadline and not _steps_logged(logs):
        time.sleep(0.2)
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=300)
    assert driver.returncode == EXIT_RESUMABLE, stderr[-3000:]
    stopped_after = max(metrics(tmp_path))
    assert 1 <= stopped_after < 6
    assert f"stopped by SIGTERM after step {stopped_after}; add checkpoint.resume=auto to resume from" in stderr
    checkpoints = tmp_path / "outputs/cpu_demo/checkpoints"
    assert (checkpoints / f"step_{stopped_after}/trainer_state.json").is_file()

    resumed = [*COMMON, "checkpoint.resume=auto"]
    killed = subprocess.run(
        train_command(*resumed), cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env,
        start_new_session=True,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    next_write = 3 if stopped_after < 3 else 6
    assert sorted(p.name for p in checkpoints.iterdir()) == [f"step_{stopped_after}", f"step_{next_write}.partial"]

    run_train(tmp_path, *resumed, env=env)
    assert_same_run(uninterrupted, metrics(tmp_path))


def _steps_logged(logs: Path) -> bool:
    files = list(logs.glob("*.metrics.jsonl")) if logs.is_dir() else []
    return bool(files) and files[0].read_text().count("\n") >= 1
