"""Checkpoints that are atomic and complete, and finding the one to resume from.

A checkpoint is a folder ``step_<N>`` holding each trained role group's DeepSpeed state (model,
optimizer, scheduler; written by every rank) and ``trainer_state.json``, the driver's own state (for
PPO: step, policy version, KL controller, prompt sampler, W&B run). It is written under a
``.partial`` name and renamed when complete, so a killed driver leaves the previous checkpoints
intact; leftovers are ignored with a warning.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlhf_ray.config.schema import CheckpointConfig
from rlhf_ray.distributed.role_group import RoleGroup

log = logging.getLogger(__name__)
STATE_FILE = "trainer_state.json"
PARTIAL = ".partial"


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

    def save(self, step: int, state: dict[str, Any], groups: Mapping[str, RoleGroup]) -> Path:
        """Write the checkpoint of ``step``: every group's state, then the driver's ``state`` (JSON)."""
        final = self.dir / f"step_{step}"
        partial = self.dir / f"step_{step}{PARTIAL}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for name, group in groups.items():
            group.save(str(partial / name)).result()
        (partial / STATE_FILE).write_text(json.dumps(state, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        for old in self.complete()[: -self.cfg.keep_last]:
            shutil.rmtree(old)
        return final

    def load(self, path: Path, groups: Mapping[str, RoleGroup]) -> dict[str, Any]:
        """Restore every group from ``path``; returns the driver's state."""
        for name, group in groups.items():
            group.load(str(path / name)).result()
        return json.loads((path / STATE_FILE).read_text())
