"""The fault-injection harness (a process dies at the N-th arrival at a point, counted over restarts),
the naming of dead actors, and the restart budget."""

import os
import subprocess
import sys

import pytest
from ray.exceptions import ActorDiedError

from rlhf_ray.distributed.failures import ActorProcess, RestartBudget, RunFailed, identify
from rlhf_ray.distributed.faults import Fault, planned_faults

ARRIVE_TWICE = (
    "from rlhf_ray.distributed.faults import reach; reach('update'); print('first'); reach('update'); print('second')"
)


def arrive(tmp_path, role: str, faults: str) -> subprocess.CompletedProcess:
    env = os.environ | {
        "RLHF_RAY_FAULTS": faults,
        "RLHF_RAY_FAULT_DIR": str(tmp_path / "faults"),
        "RLHF_RAY_ROLE": role,
        "RLHF_RAY_RANK": "1",
    }
    return subprocess.run([sys.executable, "-c", ARRIVE_TWICE], env=env, capture_output=True, text=True, timeout=60)


def test_a_fault_kills_its_process_at_the_nth_arrival_counted_across_processes_and_only_once(tmp_path):
    first = arrive(tmp_path, "critic", "critic:1:update:2")
    assert first.returncode == -9 and first.stdout.split() == ["first"]
    # A restarted process goes on counting (arrivals 3 and 4): the fault has fired.
    again = arrive(tmp_path, "critic", "critic:1:update:2")
    assert again.returncode == 0 and again.stdout.split() == ["first", "second"]
    assert (tmp_path / "faults/critic.1.update").stat().st_size == 4


def test_faults_of_other_processes_or_ranks_do_not_fire(tmp_path):
    result = arrive(tmp_path, "policy", "critic:1:update:1,policy:0:update:1")
    assert result.returncode == 0 and result.stdout.split() == ["first", "second"]


def test_fault_specs_are_parsed_and_a_bad_one_is_named(monkeypatch):
    monkeypatch.setenv("RLHF_RAY_FAULTS", "rollout:0:generate:10, driver:0:checkpoint_write:2")
    assert planned_faults() == [Fault("rollout", 0, "generate", 10), Fault("driver", 0, "checkpoint_write", 2)]
    monkeypatch.setenv("RLHF_RAY_FAULTS", "critic:update:2")
    with pytest.raises(ValueError, match="'critic:update:2' is not process:rank:point:call"):
        planned_faults()


def test_a_dead_actor_is_named_by_role_rank_node_phase_cause_and_log():
    error = ActorDiedError()
    error.actor_id = "ab12"
    error.error_msg = (
        "The actor died unexpectedly before finishing this task.\n\tclass_name: CriticWorker\n"
        "The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR"
    )
    process = ActorProcess("critic", 1, "f" * 40, "/tmp/ray/logs/worker-1.err")
    failure = identify(error, {"ab12": process}, "update")
    assert str(failure) == (
        f"critic rank 1 on node {'f' * 12} died during update: The actor is dead because its worker process "
        "has died (its log: /tmp/ray/logs/worker-1.err)"
    )
    assert identify(error, {}, "update") is None


def test_the_restart_budget_counts_roles_and_engines_together():
    budget = RestartBudget(limit=2)
    budget.spend("roles", "critic rank 0 died")
    budget.spend("engines", "rollout engine 1 died")
    assert (budget.roles, budget.engines) == (1, 1)
    with pytest.raises(
        RunFailed,
        match=r"reference rank 0 died; the run has made 2 recoveries, all that resources.max_restarts = 2 allows",
    ):
        budget.spend("roles", "reference rank 0 died")
