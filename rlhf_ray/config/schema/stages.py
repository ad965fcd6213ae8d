"""The SFT, reward-model and DPO stages of the pipeline, which of them it runs, and the simulated labellers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from rlhf_ray.config.schema.base import PositiveInt, Section
from rlhf_ray.config.schema.outputs import CheckpointConfig
from rlhf_ray.config.schema.training import OptimizationConfig


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
    """Human comparisons: a prompt and a chosen and a rejected response, or a prompt and a ranking of
    its responses (the rows ``rlhf-ray label serve`` writes). A ranking of K responses gives its
    K(K-1)/2 pairs, each weighted 1/(its ranking's pairs) in the loss, so that every ranking counts once
    (InstructGPT); tied responses give no pair; flagged, skipped and all-tied rankings are left out and
    counted (``data/excluded_rows/<why>``)."""

    chosen_key: str = "chosen"
    """Column of the preferred response (a string, or a one-message assistant turn)."""
    rejected_key: str = "rejected"
    """Column of the other response."""
    margin_key: str | None = None
    """Optional column of a margin by which the chosen score must exceed the rejected (Llama 2)."""
    ranking_key: str = "ranking"
    """Column that makes a row a ranking: the indices of ``responses_key``'s responses, best first, in
    tiers of tied ones (``[[2], [0, 3], [1]]``); null for a skipped or flagged item."""
    responses_key: str = "responses"
    """Column of a ranking row's responses (strings)."""
    flag_key: str = "flag"
    """Column of a ranking row's flag (``unsafe``, ``nonsense``); a flagged row is left out."""


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


DPOLoss = Literal["dpo", "cdpo", "ipo"]


class DPOConfig(SupervisedStageConfig):
    """Direct preference optimisation of the policy on preference pairs (``rlhf-ray dpo``), against the
    frozen starting model as reference. Runs on the policy's ranks (``resources.policy``). ``init_path``
    None: the SFT stage's exported model."""

    loss: DPOLoss = "dpo"
    """``dpo``: -log sigmoid(beta * margin of log-ratios) (Rafailov et al. 2023); ``cdpo``: the same
    with labels assumed flipped with probability ``label_smoothing``; ``ipo``: (margin - 1 / (2 beta))^2
    (Azar et al. 2023)."""
    beta: Annotated[float, Field(gt=0.0)] = 0.1
    """Strength of the leash to the reference: the implicit reward is beta * (policy - reference) log-probs."""
    label_smoothing: Annotated[float, Field(ge=0.0, lt=0.5)] = 0.0
    """``cdpo``'s probability that a pair's labels are flipped; 0 for ``dpo`` and ``ipo``."""
    data: PreferenceDataConfig = Field(default_factory=PreferenceDataConfig)
    """Preference pairs (the same files and columns as ``reward_model.data``)."""
    train: OptimizationConfig = Field(default_factory=lambda: OptimizationConfig(lr=5e-7))
    """Optimisation; ``micro_batch_size`` and ``global_batch_size`` count pairs."""
    checkpoint: CheckpointConfig = Field(
        default_factory=lambda: CheckpointConfig(dir="outputs/dpo/checkpoints", export_dir="outputs/dpo/model")
    )
    """Checkpoints, resume, and the exported policy."""


class PipelineConfig(Section):
    """What ``rlhf-ray pipeline`` runs after SFT."""

    method: Literal["ppo", "dpo"] = "ppo"
    """``ppo``: reward model, then PPO against it (InstructGPT); ``dpo``: DPO on the preference pairs."""


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
