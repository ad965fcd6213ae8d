"""A whole experiment: the root of the schema, and what follows from it (the roles it runs)."""

from __future__ import annotations

from pydantic import Field

from rlhf_ray.config.schema.algorithm import AlgorithmConfig, RewardConfig
from rlhf_ray.config.schema.base import Section
from rlhf_ray.config.schema.feedback import FeedbackConfig
from rlhf_ray.config.schema.outputs import CheckpointConfig, LoggingConfig
from rlhf_ray.config.schema.role_sections import ModelsConfig, ResourcesConfig, TrainConfig
from rlhf_ray.config.schema.roles import ROLE_SPECS, ROLES, RoleName
from rlhf_ray.config.schema.sampling import DataConfig, RolloutConfig
from rlhf_ray.config.schema.stages import (
    DPOConfig,
    LabellerConfig,
    PipelineConfig,
    RewardModelStageConfig,
    SFTConfig,
)


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
    dpo: DPOConfig = Field(default_factory=DPOConfig)
    """DPO of the policy on the preference pairs (``rlhf-ray dpo``): stage 2 of a ``dpo`` pipeline."""
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    """What ``rlhf-ray pipeline`` runs after SFT."""
    labeller: LabellerConfig | None = None
    """Simulated labellers writing the SFT and preference data; None: the stages read given files."""
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    """Human labelling in a browser (``rlhf-ray label serve``), whose rankings train the reward model."""

    def active_roles(self) -> list[RoleName]:
        """The roles this experiment creates actors for, in the role table's order."""
        return [role.name for role in ROLES if role.active(self)]

    def trained_roles(self) -> list[RoleName]:
        """The active roles PPO trains (and checkpoints hold)."""
        return [role.name for role in ROLES if role.trained and role.active(self)]

    def role_uses_accelerator(self, role: RoleName) -> bool:
        """Whether each rank of ``role`` needs a GPU (a reward function runs on a CPU)."""
        return ROLE_SPECS[role].uses_accelerator(self)

    def optimizer_steps(self, role: RoleName, iterations: int) -> int:
        """Optimizer steps of a trained role over ``iterations`` PPO iterations."""
        train = getattr(self.train, role)
        return iterations * train.epochs * (self.samples_per_step() // train.global_batch_size)

    def samples_per_step(self) -> int:
        return self.data.prompts_per_step * self.rollout.samples_per_prompt

    def old_logprobs_from_update(self) -> bool:
        """Whether the policy update itself gives the recomputed log-probs the PPO ratio starts from: when an
        iteration is one epoch of one optimizer step, the update's only forward over each sample sees the
        weights before the update, so a forward of their own would compute the same numbers. Not when the
        KL is in the reward: the advantages need them before the update."""
        kl_in_reward = self.algorithm.kl.placement == "reward" and "reference" in self.active_roles()
        return (
            self.algorithm.old_logprobs == "recompute" and self.optimizer_steps("policy", 1) == 1 and not kl_in_reward
        )
