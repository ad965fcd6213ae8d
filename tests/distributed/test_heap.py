"""Freezing a process's heap once its first step has run: what is garbage goes first, what lives on leaves
the collector's walks, and each process of the role groups freezes once."""

import gc
import weakref

import pytest

from rlhf_ray.distributed.heap import freeze_heap
from rlhf_ray.distributed.role_group import freeze_heaps
from rlhf_ray.distributed.role_host import HostedRole


class Node:
    def __init__(self):
        self.other = self


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()


def tracked(obj) -> bool:
    return any(o is obj for o in gc.get_objects())


def test_garbage_is_collected_and_survivors_frozen(unfrozen):
    garbage, survivor = Node(), Node()
    garbage_ref = weakref.ref(garbage)
    del garbage  # a cycle: only the cyclic collector frees it
    assert garbage_ref() is not None and tracked(survivor)
    freeze_heap()
    assert garbage_ref() is None, "the cycle that was garbage must be collected, not frozen for good"
    assert not tracked(survivor) and gc.get_freeze_count() > 0
    later = Node()
    assert tracked(later), "what is allocated after the freeze is collected as before"


class Process:
    """Stands in for an actor handle: counts ``actor.freeze_heap.remote()`` calls (a host's arrive as
    ``host.call.remote(role, "freeze_heap")``)."""

    def __init__(self, name: str):
        self.name, self.calls = name, []
        self._actor_id = type("ActorId", (), {"hex": lambda _: name})()

    @property
    def freeze_heap(self):
        return self

    @property
    def call(self):
        return self

    def remote(self, *args):
        self.calls.append(args)


class Group:
    def __init__(self, actors):
        self.actors = actors


def test_each_process_freezes_once():
    host, critic = Process("host"), Process("critic")
    freeze_heaps([Group([HostedRole(host, "policy")]), Group([HostedRole(host, "reference")]), Group([critic])])
    assert [method for _, method in host.calls] == ["freeze_heap"], "the shared process, once (by either role)"
    assert critic.calls == [()]
