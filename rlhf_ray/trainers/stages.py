"""The stages that train one model on a fixed dataset: supervised fine-tuning on demonstrations, a reward
model trained on preference pairs (the first two of the InstructGPT recipe), and DPO of the policy on the
same pairs. All run through the loop of ``trainers.supervised``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from rlhf_ray.algorithms.preference import bradley_terry_loss
from rlhf_ray.config import Config
from rlhf_ray.data.preferences import PreferenceBatch, PreferencePair, load_preferences, preference_batch
from rlhf_ray.data.records import LoadedRows
from rlhf_ray.data.sft import Demonstration, demonstration_batch, load_demonstrations
from rlhf_ray.data.simulated import simulate_labels
from rlhf_ray.distributed.role_group import RoleGroup
from rlhf_ray.models.checks import ModelFolder, role_folder
from rlhf_ray.models.paths import model_folders
from rlhf_ray.models.reward_stats import RewardStats
from rlhf_ray.trainers.supervised import Stage
from rlhf_ray.workers.dpo import DPOWorker, dpo_objective
from rlhf_ray.workers.reward_trainer import RewardTrainerWorker
from rlhf_ray.workers.sft import SFTWorker


def dataset_paths(cfg: Config, stage: str) -> tuple[str, str | None]:
    """(train, held-out) files of ``stage``: the configured ones, or those the simulated labellers write."""
    data = getattr(cfg, stage).data
    if data.train_path is not None:
        return data.train_path, data.eval_path
    files = simulate_labels(cfg.labeller, cfg.seed)
    if stage == "sft":
        return str(files.sft_train), str(files.sft_eval)
    return str(files.preferences_train), str(files.preferences_eval)


def _load_splits(stage: Stage, tokenizer, load: Callable[..., LoadedRows]) -> tuple[LoadedRows, LoadedRows | None]:
    """The stage's training and held-out rows, read by ``load`` (path, data config, tokenizer, strict field)."""
    train, held_out = dataset_paths(stage.cfg, stage.name)
    strict_field = f"{stage.name}.data.strict"
    train_rows = load(train, stage.section.data, tokenizer, strict_field)
    return train_rows, load(held_out, stage.section.data, tokenizer, strict_field) if held_out else None


class SFTStage(Stage[Demonstration]):
    """Stage 1: the policy learns to imitate demonstrations (cross-entropy on response tokens)."""

    name, job, role, worker_cls = "sft", "sft", "policy", SFTWorker

    def init_folder(self) -> ModelFolder:
        if self.section.init_path is not None:
            return ModelFolder(self.name, "sft.init_path", self.section.init_path)
        return role_folder(self.cfg, model_folders(self.cfg).folders, "policy")

    def load_data(self, tokenizer) -> tuple[LoadedRows[Demonstration], LoadedRows[Demonstration] | None]:
        return _load_splits(self, tokenizer, load_demonstrations)

    def batch(self, items: list[Demonstration], pad_token_id: int):
        return demonstration_batch(items, pad_token_id)

    def evaluate(self, group: RoleGroup, batch) -> dict[str, float]:
        loss = float(group.response_nll(batch).result().sum() / batch.response_mask.sum())
        return {"eval/loss": loss, "eval/perplexity": float(torch.tensor(loss).exp())}


class PreferenceStage(Stage[PreferencePair]):
    """A stage trained on preference pairs, starting from the SFT model unless ``init_path`` says."""

    what: str
    """What the stage trains, for messages."""

    def init_folder(self) -> ModelFolder:
        init_field = f"{self.name}.init_path"
        if self.section.init_path is not None:
            return ModelFolder(self.name, init_field, self.section.init_path)
        sft_model = self.cfg.sft.checkpoint.export_dir
        if sft_model is None or not Path(sft_model).is_dir():
            raise FileNotFoundError(
                f"{init_field} is not set, so the {self.what} starts from the SFT model at "
                f"sft.checkpoint.export_dir ({sft_model}), which does not exist: run `rlhf-ray sft` first "
                f"or set {init_field} to a model folder"
            )
        return ModelFolder(self.name, "sft.checkpoint.export_dir", sft_model)

    def load_data(self, tokenizer) -> tuple[LoadedRows[PreferencePair], LoadedRows[PreferencePair] | None]:
        return _load_splits(self, tokenizer, load_preferences)

    def batch(self, items: list[PreferencePair], pad_token_id: int) -> PreferenceBatch:
        return preference_batch(items, pad_token_id)


class RewardModelStage(PreferenceStage):
    """Stage 2: a sequence scorer learns the labellers' preferences (Bradley-Terry loss)."""

    name, job, role, worker_cls, what = "reward_model", "rm", "reward", RewardTrainerWorker, "reward model"

    def evaluate(self, group: RoleGroup, batch: PreferenceBatch) -> dict[str, float]:
        chosen, rejected = group.pair_scores(batch).result().unbind(-1)
        _, accuracy = bradley_terry_loss(chosen, rejected, weight=batch.weight)  # weighted: a ranking counts once
        return {"eval/accuracy": float(accuracy), "eval/margin": float((chosen - rejected).mean())}

    def after_export(
        self, group: RoleGroup, train_items: list[PreferencePair], pad_token_id: int, export_dir: Path
    ) -> None:
        """Save the mean and std of the scores of every training response, for ``reward.normalize``."""
        scores = group.pair_scores(self.batch(train_items, pad_token_id)).result().flatten()
        RewardStats(float(scores.mean()), float(scores.std()), scores.numel()).save(export_dir)


class DPOStage(PreferenceStage):
    """The policy learns the labellers' preferences directly (DPO), against its starting weights."""

    name, job, role, worker_cls, what = "dpo", "dpo", "policy", DPOWorker, "DPO policy"

    def evaluate(self, group: RoleGroup, batch: PreferenceBatch) -> dict[str, float]:
        loss, stats = dpo_objective(group.pair_logprobs(batch).result(), self.cfg.dpo, batch.weight)
        return {"eval/loss": float(loss)} | {f"eval/{name}": float(value) for name, value in stats.items()}


STAGES = {stage.name: stage for stage in (SFTStage, RewardModelStage, DPOStage)}
"""Each stage by its config section."""
