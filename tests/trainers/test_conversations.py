"""Multi-turn rollouts on the real vLLM engine (in-process, tiny models): the token ids the trainer
scores are the ones the engine sampled and the environment's rendered messages, turn by turn; the masks
keep the loss, the KL, the values and the entropy off the environment's tokens; and each reward lands on
the last token of its turn."""

from dataclasses import replace

import pytest
import torch

from rlhf_ray.algorithms import aggregate_loss, clipped_value_loss, kl_estimate, ppo_policy_loss
from rlhf_ray.config.schema import AlgorithmConfig, RolloutConfig
from rlhf_ray.data.experience import compute_advantages
from rlhf_ray.data.prompts import load_prompts
from rlhf_ray.data.samples import batch_from_samples
from rlhf_ray.environments.instructed import GO_ON, INSTRUCTIONS
from rlhf_ray.models import load_causal_lm
from rlhf_ray.models.forward import response_logprobs_and_entropy
from rlhf_ray.trainers.conversations import Conversations
from rlhf_ray.trainers.sampling import Sampler, sampling_config

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

ROLLOUT = RolloutConfig(
    max_turns=3,
    environment="rlhf_ray.environments.instructed:InstructingUser",
    max_new_tokens=6,
    max_environment_tokens=48,
    samples_per_prompt=2,
)


@pytest.fixture(scope="module")
def sampler(tiny_paths):
    overrides = [
        "rollout.dtype=float32",
        "rollout.enforce_eager=true",
        "rollout.cpu_kv_cache_bytes=33554432",
        "data.max_prompt_length=32",
        *(f"rollout.{key}={value}" for key, value in [("max_turns", 3), ("max_new_tokens", 6)]),
        "rollout.max_environment_tokens=48",
    ]
    sampler = Sampler(sampling_config(str(tiny_paths.policy), overrides), str(tiny_paths.policy))
    yield sampler
    sampler.close()


@pytest.fixture(scope="module")
def rolled_out(sampler):
    """Conversations of 4 synthetic prompts x 2 samples, and every call the engine answered, recorded."""
    prompts = load_prompts(None, sampler.cfg.data, sampler.tokenizer, seed=0).items[:4]
    calls = []

    def generate(token_ids, sampling):
        samples = sampler.samples(token_ids, sampling)
        calls.append(([list(ids) for ids in token_ids], samples))
        return samples

    # A random tiny model rarely says EOS: stopping on a sixth of the vocabulary varies the turns' lengths.
    stops = tuple(range(420, 512))
    spec = replace(sampler.configured(), n=2, max_new_tokens=6, logprobs=True, seed=7, stop_token_ids=stops)
    return prompts, Conversations(ROLLOUT, sampler.tokenizer)(prompts, spec, generate), calls


def _flat(nested):
    return [item for items in nested for item in items]


def test_the_trainers_ids_are_the_engines_and_the_rendered_messages_turn_by_turn(sampler, rolled_out):
    prompts, samples, calls = rolled_out
    prompt_ids = [list(p.token_ids) for p in prompts for _ in range(2)]
    assert len(calls) == ROLLOUT.max_turns and calls[0][0] == [p.token_ids for p in prompts]
    expected = [list(ids) for ids in prompt_ids]
    for turn, (requests, answers) in enumerate(calls, start=1):
        if turn > 1:  # each later turn continues exactly the ids so far
            assert requests == expected
        for ids, sample, conversation in zip(expected, _flat(answers), _flat(samples), strict=True):
            ids += sample.token_ids
            if turn < ROLLOUT.max_turns:  # the user's message as the tiny chat template writes it
                message = conversation.messages[2 * turn]["content"]
                assert message in INSTRUCTIONS if turn == 1 else message == GO_ON
                closing = "" if sample.token_ids[-1] == sampler.tokenizer.eos_token_id else "</s>"
                text = f"{closing}<|user|>\n{message}</s><|assistant|>\n"
                ids += sampler.tokenizer(text, add_special_tokens=False).input_ids
    endings = {s.finish_reason for _, answers in calls for s in _flat(answers)}
    assert endings == {"stop", "length"}  # answers of every length, cut or stopped
    for ids, prompt, conversation in zip(expected, prompt_ids, _flat(samples), strict=True):
        assert prompt + conversation.token_ids == ids


def test_the_policy_mask_covers_exactly_the_sampled_tokens_and_each_turn_has_its_reward(rolled_out):
    prompts, samples, calls = rolled_out
    conversations = _flat(samples)
    turns = [_flat(answers) for _, answers in calls]
    for i, conversation in enumerate(conversations):
        answers = [turn_samples[i] for turn_samples in turns]
        mask, position, ends = conversation.policy_mask, 0, []
        for turn, answer in enumerate(answers, start=1):
            assert mask[position : position + len(answer.token_ids)] == [1] * len(answer.token_ids)
            assert conversation.logprobs[position : position + len(answer.token_ids)] == answer.logprobs
            position += len(answer.token_ids)
            ends.append(position - 1)
            if turn < len(answers):
                gap = mask.index(1, position) - position
                assert gap > 0 and mask[position : position + gap] == [0] * gap
                assert conversation.logprobs[position : position + gap] == [0.0] * gap
                position += gap
        assert position == len(conversation.token_ids) == len(mask)
        # InstructingUser rewards turn 2 on its last token; turn 3's reward is the dialogue's.
        assert list(conversation.turn_rewards) == [ends[1]]
        assert conversation.turns == 3
        roles = [m["role"] for m in conversation.messages]
        assert roles == ["user", "assistant", "user", "assistant", "user", "assistant"]


def test_the_batch_keeps_loss_kl_values_and_entropy_off_the_environments_tokens(sampler, tiny_paths, rolled_out):
    prompts, samples, _ = rolled_out
    batch = batch_from_samples([p.token_ids for p in prompts], samples, sampler.tokenizer.pad_token_id)
    conversations = _flat(samples)
    for row, conversation in enumerate(conversations):
        n = len(conversation.token_ids)
        assert batch.response_mask[row, :n].tolist() == conversation.policy_mask
        assert batch.response_mask[row, n:].sum() == 0
        assert batch.attention_mask[row, -batch.response_length :][:n].all()  # context: attended to
    environment = (batch.attention_mask[:, -batch.response_length :] == 1) & (batch.response_mask == 0)
    assert environment.sum() > 0

    model = load_causal_lm(str(tiny_paths.policy), "float32", role="policy")
    logprobs, entropy = response_logprobs_and_entropy(model, batch)
    assert (logprobs[environment] == 0).all() and (entropy[environment] == 0).all()
    # The engine's log-probs of the policy's tokens are the model's (fp32 on both sides).
    policy = batch.response_mask.bool()
    torch.testing.assert_close(logprobs[policy], batch.rollout_logprobs[policy], atol=2e-4, rtol=0)

    scores = torch.linspace(-1, 1, len(batch))
    ref = logprobs.detach() + 0.1 * torch.randn_like(logprobs)
    values = torch.randn_like(logprobs) * batch.attention_mask[:, -batch.response_length :]
    scored = batch.with_fields(scores=scores, old_logprobs=logprobs.detach(), ref_logprobs=ref, values=values)
    algo = AlgorithmConfig(advantage_estimator="gae", kl={"coef": 0.1, "placement": "reward"})
    scored, _ = compute_advantages(scored, algo, 0.1, 2)
    assert (scored.advantages[environment] == 0).all() and (scored.returns[environment] == 0).all()

    # Gradients reach the policy's tokens only, through every term of the policy and value losses.
    new_logprobs = logprobs.detach().clone().requires_grad_()
    new_entropy = entropy.detach().clone().requires_grad_()
    new_values = values.clone().requires_grad_()
    mask = batch.response_mask
    loss, _ = ppo_policy_loss(new_logprobs, scored.old_logprobs, scored.advantages + 0.3, mask, is_weights=None)
    loss = loss + aggregate_loss(kl_estimate(new_logprobs, ref, "k3"), mask, "token_mean", None)
    loss = loss - aggregate_loss(new_entropy, mask, "token_mean", None)
    loss = loss + clipped_value_loss(new_values, scored.values, scored.returns, mask)[0]
    loss.backward()
    for grad in (new_logprobs.grad, new_entropy.grad, new_values.grad):
        assert (grad[environment] == 0).all()
        assert (grad[policy] != 0).sum() > policy.sum() // 2
