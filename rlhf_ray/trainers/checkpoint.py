"""Checkpoints that are atomic and complete, and finding the one to resume from.

A checkpoint is a folder ``step_<N>`` holding each trained role's DeepSpeed state (model, optimizer,
scheduler; written by every rank) and ``trainer_state.json`` (step, policy version, KL controller,
prompt sampler, W&B run). It is written under a ``.partial`` name and renamed when complete, so a
killed driver leaves the previous checkpoints intact; leftovers are ignored with a warning.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from rlhf_ray.config.schema import CheckpointConfig
from rlhf_ray.workers.groups import RoleGroups

log = logging.getLogger(__name__)
STATE_FILE = "trainer_state.json"
PARTIAL = ".partial"


@dataclass
class TrainerState:
    step: int
    policy_version: int
    kl_controller: dict
    sampler: dict
    run_name: str
    wandb_id: str | None


class Checkpointer:
    def __init__(self, cfg: CheckpointConfig):
        self.cfg = cfg
        self.dir = Path(cfg.dir)

    def complete(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.dir.is_dir():
            return []
        found = [p for p in self.dir.glob("step_*") if not p.name.endswith(PARTIAL) and (p / STATE_FILE).is_file()]
        return sorted(found, key=lambda p: int(p.name.removeprefix("step_")))

    def resume_point(self) -> Path | None:
        """The checkpoint ``checkpoint.resume`` asks for (None: start afresh)."""
        for partial in self.dir.glob(f"step_*{PARTIAL}") if self.dir.is_dir() else []:
            log.warning("ignoring incomplete checkpoint %s (a save was interrupted)", partial)
        if self.cfg.resume == "never":
            return None
        if self.cfg.resume == "auto":
            complete = self.complete()
            return complete[-1] if complete else None
        path = Path(self.cfg.resume)
        if not (path / STATE_FILE).is_file():
            raise FileNotFoundError(f"checkpoint.resume: {path} is not a complete checkpoint (no {STATE_FILE})")
        return path

    def save(self, state: TrainerState, roles: RoleGroups) -> Path:
        final = self.dir / f"step_{state.step}"
        partial = self.dir / f"step_{state.step}{PARTIAL}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for name, group in self._trained(roles).items():
            group.call("save", str(partial / name))
        (partial / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        for old in self.complete()[: -self.cfg.keep_last]:
            shutil.rmtree(old)
        return final

    def load(self, path: Path, roles: RoleGroups) -> TrainerState:
        for name, group in self._trained(roles).items():
            group.call("load", str(path / name))
        return TrainerState(**json.loads((path / STATE_FILE).read_text()))

    @staticmethod
    def _trained(roles: RoleGroups):
        return {
            name: group for name, group in (("policy", roles.policy), ("critic", roles.critic)) if group is not None
        }
