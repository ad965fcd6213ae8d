"""The reward statistics a trained reward model carries in its folder, so PPO can normalise its scores."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

STATS_FILE = "reward_stats.json"


@dataclass(frozen=True)
class RewardStats:
    mean: float
    std: float
    count: int
    """How many responses the statistics are over (chosen and rejected of every training pair)."""

    def save(self, model_folder: str | Path) -> None:
        (Path(model_folder) / STATS_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, model_folder: str | Path) -> RewardStats:
        path = Path(model_folder) / STATS_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"reward.normalize: {model_folder} has no {STATS_FILE}; train the model with `rlhf-ray rm` "
                "(which saves the statistics) or set reward.normalize: false"
            )
        return cls(**json.loads(path.read_text()))
