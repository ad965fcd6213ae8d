"""Environments that break the interface, for the failures they must cause."""

from rlhf_ray.environments import Reply


class AnswersAString:
    def reply(self, conversation):
        return "Go on."


class SaysANumber:
    def reply(self, conversation):
        return Reply(42)


class GivesNaN:
    def reply(self, conversation):
        return Reply("Go on.", float("nan"))
