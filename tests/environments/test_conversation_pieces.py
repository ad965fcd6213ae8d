"""The pieces of a multi-turn rollout that need no engine: rendering an environment's message after the
policy's sampled tokens, where the rewards land and how the estimators carry them across turns, the demo's
simulated user and reward, and the config checks."""

import json
from pathlib import Path

import pytest
import torch

from rlhf_ray.algorithms.advantages import AdvantageInput, gae, grpo, reinforce_plus_plus
from rlhf_ray.config import ConfigError, validate_config
from rlhf_ray.config.schema import DataConfig, RolloutConfig
from rlhf_ray.data.prompts import load_prompts
from rlhf_ray.data.rendering import render_reply
from rlhf_ray.data.samples import Sample, batch_from_samples
from rlhf_ray.engines.rollout import SamplingSpec
from rlhf_ray.environments import Conversation, Reply
from rlhf_ray.environments.instructed import (
    GO_ON,
    INSTRUCTIONS,
    InstructingUser,
    demonstrations,
    follows_instruction,
)
from rlhf_ray.models import build_tokenizer
from rlhf_ray.rewards.http import ScoreRequest
from rlhf_ray.serving.reward_server import merged
from rlhf_ray.trainers.conversations import Conversations, EnvironmentFailure

ROOT = Path(__file__).resolve().parents[2]

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(512, seed=0)


def test_a_reply_is_the_templates_text_after_what_the_policy_sampled(tokenizer):
    history = [{"role": "user", "content": "Tell me about cats."}, {"role": "assistant", "content": "cats purr"}]
    reply = {"role": "user", "content": "Say more."}
    # The policy ended its turn with EOS: the reply starts at the next header.
    assert render_reply(tokenizer, history, reply, "</s>") == "<|user|>\nSay more.</s><|assistant|>\n"
    # Cut by length, the template's end of the turn closes it first.
    assert render_reply(tokenizer, history, reply, "") == "</s><|user|>\nSay more.</s><|assistant|>\n"
    tokenizer.chat_template = CHATML
    try:  # a template that writes a newline after its end-of-turn token
        assert render_reply(tokenizer, history, reply, "<|im_end|>") == (
            "\n<|im_start|>user\nSay more.<|im_end|>\n<|im_start|>assistant\n"
        )
        assert render_reply(tokenizer, history, {"role": "tool", "content": "42"}, "") == (
            "<|im_end|>\n<|im_start|>tool\n42<|im_end|>\n<|im_start|>assistant\n"
        )
    finally:
        tokenizer.chat_template = build_tokenizer(512, seed=0).chat_template


def _rollout(tokenizer, environment: str, endings: list[str]):
    """Conversations of one prompt x 2 samples, with turns ending by ``endings`` in order (an engine's
    samples stood in by fixed ids: what is tested is the turn loop around it)."""
    prompt = load_prompts(None, DataConfig(max_prompt_length=32), tokenizer, seed=0).items[0]
    finishes = iter(endings)

    def generate(token_ids, sampling):
        return [[Sample([40, 41], next(finishes), [-1.0, -1.0]) for _ in range(sampling.n)] for _ in token_ids]

    rollout = RolloutConfig(max_turns=3, environment=environment, max_new_tokens=2, max_environment_tokens=48)
    spec = SamplingSpec(2, 1.0, 1.0, -1, 2, (), seed=5)
    return Conversations(rollout, tokenizer)([prompt], spec, generate)


def test_a_conversation_cut_in_any_turn_counts_as_cut(tokenizer):
    environment = "rlhf_ray.environments.instructed:InstructingUser"
    # Turn 1 of the first conversation is cut; its last turn, and every turn of the second, stop on EOS.
    [[cut, whole]] = _rollout(tokenizer, environment, ["length", "stop", "stop", "stop", "stop", "stop"])
    assert (cut.finish_reason, whole.finish_reason, cut.turns, whole.turns) == ("length", "stop", 3, 3)


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ("AnswersAString", "failed at turn 1: TypeError(\"reply() returned 'Go on.', not a Reply\")"),
        ("SaysANumber", "failed at turn 1: TypeError(\"an environment's message is a string or a {role, content}"),
        ("GivesNaN", "gave turn 1 the reward nan"),
    ],
)
def test_an_environment_that_breaks_the_interface_fails_the_rollout_naming_it(tokenizer, environment, message):
    with pytest.raises(EnvironmentFailure) as failure:
        _rollout(tokenizer, f"tests.support.environments:{environment}", ["stop"] * 6)
    assert f"environment tests.support.environments:{environment} " in str(failure.value)
    assert message in str(failure.value)


def test_the_reward_server_keeps_each_requests_messages_when_it_merges_them():
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    with_messages = ScoreRequest(prompts=["p"], responses=["r"], messages=[conversation])
    without = ScoreRequest(prompts=["q", "s"], responses=["t", "u"])
    assert merged([with_messages, without]).arguments()["messages"] == [conversation, None, None]


def test_a_conversation_sample_becomes_a_row_masked_on_the_environments_tokens():
    # prompt [7, 8]; turn 1 [11, 12], environment [90, 91, 92], turn 2 [13]
    conversation = Sample(
        [11, 12, 90, 91, 92, 13], "stop", [-0.5, -0.25, 0.0, 0.0, 0.0, -1.0], [1, 1, 0, 0, 0, 1], {1: 0.5}
    )
    single = Sample([21], "length", [-2.0])
    batch = batch_from_samples([[7, 8], [9]], [[conversation], [single]], pad_token_id=0)
    assert batch.sequences.tolist() == [[7, 8, 11, 12, 90, 91, 92, 13], [0, 9, 21, 0, 0, 0, 0, 0]]
    assert batch.attention_mask.tolist() == [[1] * 8, [0, 1, 1, 0, 0, 0, 0, 0]]
    assert batch.response_mask.tolist() == [[1, 1, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0]]
    assert batch.turn_rewards.tolist() == [[0, 0.5, 0, 0, 0, 0], [0] * 6]
    assert batch.rollout_logprobs.tolist() == [[-0.5, -0.25, 0, 0, 0, -1.0], [-2.0, 0, 0, 0, 0, 0]]
    assert conversation.turns == 2 and single.turns == 1


def _compressed_gae(rewards, values, gamma, lam):
    """GAE over a list of tokens that are all the policy's (the reference: environment tokens removed)."""
    advantages, next_value, next_advantage = [0.0] * len(rewards), 0.0, 0.0
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + gamma * next_value - values[t]
        next_advantage = delta + gamma * lam * next_advantage
        advantages[t], next_value = next_advantage, values[t]
    return advantages


def test_gae_carries_turn_rewards_and_the_score_across_the_environments_tokens():
    mask = torch.tensor([[1, 1, 0, 0, 1, 1, 0]])
    turn_rewards = torch.tensor([[0.0, 0.7, 0, 0, 0, 0, 0]])
    values = torch.tensor([[0.1, -0.2, 5.0, 5.0, 0.3, 0.4, 5.0]])  # values on context tokens are ignored
    inp = AdvantageInput(
        scores=torch.tensor([2.0]),
        kl_rewards=torch.zeros(1, 7),
        mask=mask,
        values=values,
        samples_per_prompt=1,
        gamma=0.9,
        lam=0.8,
        turn_rewards=turn_rewards,
    )
    out = gae(inp)
    expected = _compressed_gae([0.0, 0.7, 0.0, 2.0], [0.1, -0.2, 0.3, 0.4], 0.9, 0.8)
    torch.testing.assert_close(out.advantages[0, [0, 1, 4, 5]], torch.tensor(expected))
    assert out.advantages[0, [2, 3, 6]].tolist() == [0, 0, 0]
    # REINFORCE++'s returns-to-go: the turn reward counts, discounted, for its turn's tokens and the ones before.
    returns = reinforce_plus_plus(inp).returns[0]
    torch.testing.assert_close(
        returns[[0, 1, 4, 5]], torch.tensor([0.9 * 0.7 + 0.9**3 * 2, 0.7 + 0.9**2 * 2, 1.8, 2.0])
    )


def test_group_estimators_compare_whole_conversations_returns():
    # Two prompts x two conversations; the second of each group earns a turn reward.
    mask = torch.tensor([[1, 0, 1]] * 4)
    turn_rewards = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0.0, 0, 0], [0.5, 0, 0]])
    inp = AdvantageInput(
        scores=torch.tensor([1.0, 1.0, 0.0, 1.0]),
        kl_rewards=torch.zeros(4, 3),
        mask=mask,
        values=None,
        samples_per_prompt=2,
        turn_rewards=turn_rewards,
    )
    torch.testing.assert_close(inp.row_returns(), torch.tensor([1.0, 2.0, 0.0, 1.5]))
    per_row = grpo(inp).advantages[:, 0]
    group = torch.tensor([[1.0, 2.0], [0.0, 1.5]])
    expected = ((group - group.mean(-1, keepdim=True)) / (group.std(-1, keepdim=True) + 1e-6)).reshape(-1)
    torch.testing.assert_close(per_row, expected)
    assert (grpo(inp).advantages[:, 1] == 0).all()


def _conversation(*contents: str) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": c} for i, c in enumerate(contents)]


def test_the_instructing_user_asks_for_digits_or_words_then_goes_on_and_rewards_keeping_to_it():
    user = InstructingUser(turn_reward=0.5)
    first = _conversation("Tell me about cats.", "Cats are soft.")
    reply = user.reply(Conversation(first, {}, 1, seed=3))
    assert reply.message in INSTRUCTIONS and reply.reward is None
    other_answer = _conversation("Tell me about cats.", "42")
    assert user.reply(Conversation(other_answer, {}, 1, seed=3)) == reply  # the seed decides, not the policy
    asked = [user.reply(Conversation(first, {}, 1, seed)).message for seed in range(40)]
    assert set(asked) == set(INSTRUCTIONS) and 10 < asked.count("From now on, answer in digits only.") < 30
    digits = [*first, {"role": "user", "content": "From now on, answer in digits only."}]
    second = [*digits, {"role": "assistant", "content": "12 cats, 3 dog"}]  # 3 digits of 10 characters
    assert user.reply(Conversation(second, {}, 2)) == Reply(GO_ON, pytest.approx(0.5 * 0.3))
    third = [*second, {"role": "user", "content": GO_ON}, {"role": "assistant", "content": "4 5, 6!"}]
    assert user.reply(Conversation(third, {}, 3)) == Reply(None)
    words = [*first, {"role": "user", "content": "From now on, answer in words only."}]
    assert follows_instruction(
        [
            third,
            [*words, {"role": "assistant", "content": "Four 4"}],
            [*words, {"role": "assistant", "content": "?!"}],  # nothing to judge: nothing earned
            first,  # nothing asked
        ]
    ) == [1.0, 0.8, 0.0, 0.0]


def test_the_demos_sft_chats_are_the_generators_and_keep_to_the_instruction_right_after_it():
    shipped = [json.loads(line) for line in (ROOT / "configs/data/instructed_chats.jsonl").read_text().splitlines()]
    assert shipped == demonstrations(256, 0)
    right_after = [chat["messages"] for chat in shipped if len(chat["messages"]) == 4]
    after_go_on = [chat["messages"] for chat in shipped if len(chat["messages"]) == 6]
    assert len(right_after) == len(after_go_on) == 256
    assert follows_instruction(right_after) == [1.0] * 256
    kept = sum(follows_instruction(after_go_on)) / 256
    assert 0.4 < kept < 0.6  # the demonstrator keeps to it after "Go on." only half the time


def _raw(**rollout):
    return {
        "models": {"tiny": {"max_position_embeddings": 256}},
        "data": {"max_prompt_length": 32},
        "rollout": {"max_new_tokens": 16, **rollout},
        "reward": {"source": "function", "function": "rlhf_ray.rewards.demo:concise"},
        "resources": {"device": "cpu"},
    }


@pytest.mark.parametrize(
    ("rollout", "data", "message"),
    [
        ({"max_turns": 3}, {}, "rollout.environment: is required when rollout.max_turns is 3"),
        ({"environment_args": {"a": 1}}, {}, "rollout.environment_args: is set, but rollout.environment is not"),
        ({"environment": "rlhf_ray.environments.instructed"}, {}, "is not of the form 'module:Class'"),
        ({"environment": "no_such_module:User"}, {}, "cannot import module 'no_such_module'"),
        ({"environment": "rlhf_ray.environments.instructed:Nobody"}, {}, "has no class 'Nobody'"),
        (
            {"environment": "rlhf_ray.environments.instructed:InstructingUser", "environment_args": {"bogus": 1}},
            {},
            "rollout.environment_args: rlhf_ray.environments.instructed:InstructingUser cannot be built from "
            "{'bogus': 1}",
        ),
        (
            {"environment": "rlhf_ray.environments.instructed:InstructingUser", "max_turns": 3},
            {"apply_chat_template": False},
            "data.apply_chat_template: is false, but rollout.environment",
        ),
        (
            {
                "environment": "rlhf_ray.environments.instructed:InstructingUser",
                "max_turns": 4,
                "max_environment_tokens": 64,
            },
            {},
            "models.tiny.max_position_embeddings: is 256, shorter than data.max_prompt_length + rollout.max_turns x "
            "rollout.max_new_tokens + (rollout.max_turns - 1) x rollout.max_environment_tokens = 288",
        ),
    ],
)
def test_bad_conversation_settings_name_the_field(rollout, data, message):
    raw = _raw(**rollout)
    raw["data"].update(data)
    with pytest.raises(ConfigError) as error:
        validate_config(raw)
    assert message in str(error.value)


def test_a_good_conversation_config_passes():
    cfg = validate_config(_raw(environment="rlhf_ray.environments.instructed:InstructingUser", max_turns=3))
    assert (cfg.rollout.max_response_tokens, cfg.rollout.max_continuation_tokens) == (48, 48 + 2 * 64)
