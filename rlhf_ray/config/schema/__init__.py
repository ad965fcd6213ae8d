"""The configuration schema: every option of rlhf_ray with its type, default and meaning, one module per
part of an experiment (``Config`` in ``experiment`` is the root).

Every default of the project lives here and only here. Each field's docstring is its documentation
(``rlhf-ray validate`` prints the resolved values). Unknown keys are errors. Checks that relate several
fields live in ``rlhf_ray.config.checks``.
"""

from rlhf_ray.config.schema.algorithm import (
    AlgorithmConfig,
    KLConfig,
    RewardConfig,
    RewardFunctionConfig,
    RewardServerConfig,
    RolloutCorrectionConfig,
)
from rlhf_ray.config.schema.base import (
    Dtype,
    NonNegativeFloat,
    PositiveInt,
    Precision,
    Probability,
    Section,
)
from rlhf_ray.config.schema.experiment import (
    Config,
)
from rlhf_ray.config.schema.models import (
    FrozenModelConfig,
    TinyModelConfig,
    TrainableModelConfig,
)
from rlhf_ray.config.schema.outputs import (
    CheckpointConfig,
    LoggingConfig,
    WandbConfig,
)
from rlhf_ray.config.schema.role_sections import (
    ModelsConfig,
    ResourcesConfig,
    TrainConfig,
)
from rlhf_ray.config.schema.roles import (
    ROLE_NAMES,
    ROLE_SPECS,
    ROLES,
    RoleName,
    RoleSpec,
)
from rlhf_ray.config.schema.sampling import (
    ROLLOUT_ENGINES,
    DataConfig,
    RolloutConfig,
    RolloutEngineName,
)
from rlhf_ray.config.schema.stages import (
    DatasetFileConfig,
    DPOConfig,
    DPOLoss,
    LabellerConfig,
    PipelineConfig,
    PreferenceDataConfig,
    RewardModelStageConfig,
    SFTConfig,
    SFTDataConfig,
    SupervisedStageConfig,
)
from rlhf_ray.config.schema.training import (
    CriticTrainingConfig,
    OptimizationConfig,
    RoleResources,
    RoleTrainingConfig,
)

__all__ = [
    "AlgorithmConfig",
    "CheckpointConfig",
    "Config",
    "CriticTrainingConfig",
    "DPOConfig",
    "DPOLoss",
    "DataConfig",
    "DatasetFileConfig",
    "Dtype",
    "FrozenModelConfig",
    "KLConfig",
    "LabellerConfig",
    "LoggingConfig",
    "ModelsConfig",
    "NonNegativeFloat",
    "OptimizationConfig",
    "PositiveInt",
    "Precision",
    "PipelineConfig",
    "PreferenceDataConfig",
    "Probability",
    "ROLES",
    "ROLE_NAMES",
    "ROLE_SPECS",
    "ROLLOUT_ENGINES",
    "ResourcesConfig",
    "RewardConfig",
    "RewardFunctionConfig",
    "RewardServerConfig",
    "RewardModelStageConfig",
    "RoleName",
    "RoleResources",
    "RoleSpec",
    "RoleTrainingConfig",
    "RolloutConfig",
    "RolloutCorrectionConfig",
    "RolloutEngineName",
    "SFTConfig",
    "SFTDataConfig",
    "Section",
    "SupervisedStageConfig",
    "TinyModelConfig",
    "TrainConfig",
    "TrainableModelConfig",
    "WandbConfig",
]
