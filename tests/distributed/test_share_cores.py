"""``share_cores``: the ranks computing in a phase split each node's cores by process; roles sharing a
process (``resources.shared_processes``) run one after another and count once."""

from dataclasses import dataclass, field

from rlhf_ray.distributed.role_group import share_cores
from rlhf_ray.distributed.role_host import HostedRole


@dataclass
class ActorId:
    name: str

    def hex(self) -> str:
        return self.name


@dataclass
class Process:
    """Stands in for an actor handle: records the shares it is told (``actor.share_cores.remote(n)``)."""

    name: str
    shares: list[int] = field(default_factory=list)

    @property
    def _actor_id(self) -> ActorId:
        return ActorId(self.name)

    @property
    def share_cores(self):
        return self

    @property
    def call(self):  # a host's method that runs a hosted role's
        return self

    def remote(self, *args):
        self.shares.append(args[-1])


@dataclass
class Group:
    actors: list
    nodes: list[str]
    holds_model: bool = True


def test_roles_in_one_process_count_once_and_separate_processes_each():
    host, critic, reward = Process("host"), Process("critic"), Process("reward")
    policy = Group([HostedRole(host, "policy")], ["node"])
    reference = Group([HostedRole(host, "reference")], ["node"])
    share_cores([policy, reference, Group([critic], ["node"]), Group([reward], ["node"], holds_model=False)])
    # The host (told once) and the critic compute on the node; the reward function is not counted.
    assert host.shares == [2] and critic.shares == [2] and reward.shares == []


def test_engines_generating_alongside_and_other_nodes():
    a, b, c = Process("a"), Process("b"), Process("c")
    share_cores([Group([a, b], ["n1", "n2"]), Group([c], ["n1"])], alongside=1)
    assert (a.shares, b.shares, c.shares) == ([3], [2], [3])
