"""Checkpoints that are atomic and complete, and finding the one to resume from.

A checkpoint is a folder ``step_<N>`` holding each trained role group's DeepSpeed state (model,
optimizer, scheduler; written by every rank) and ``trainer_state.json``, the driver's own state (for
PPO: step, policy version, KL controller, prompt sampler, W&B run). It is written under a
``.partial`` name and renamed when complete, so a killed driver leaves the previous checkpoints
intact; leftovers are ignored with a warning. A folder that cannot be written fails when the
``Checkpointer`` is made, before any actor starts; a save that fails (a full disk) removes its partial
folder and leaves the complete checkpoints as they were.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlhf_ray.config.schema import CheckpointConfig
from rlhf_ray.distributed import faults
from rlhf_ray.distributed.role_group import RoleGroup

log = logging.getLogger(__name__)
STATE_FILE = "trainer_state.json"
PARTIAL = ".partial"


class CheckpointWriteError(OSError):
    """Checkpoints cannot be written where the config says; the message names the field and the folder
    (and, for a failed save, the step)."""


class Checkpointer:
    def __init__(self, cfg: CheckpointConfig, field: str = "checkpoint"):
        """``field``: where ``cfg`` is in the config (``checkpoint``, ``sft.checkpoint``), for messages.
        Creates ``cfg.dir`` and checks that a file can be written there."""
        self.cfg, self.field = cfg, field
        self.dir = Path(cfg.dir)
        self._check_writable()

    def _check_writable(self) -> None:
        probe = self.dir / f".write-probe-{os.getpid()}"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise CheckpointWriteError(
                f"{self.field}.dir: cannot write checkpoints to {self.dir}: {_reason(exc)}; give a folder this "
                "user can create and write (on storage every node shares)"
            ) from exc

    def complete(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.dir.is_dir():
            return []
        found = [p for p in self.dir.glob("step_*") if not p.name.endswith(PARTIAL) and (p / STATE_FILE).is_file()]
        return sorted(found, key=lambda p: int(p.name.removeprefix("step_")))

    def newest(self) -> Path | None:
        """The newest complete checkpoint, if any."""
        complete = self.complete()
        return complete[-1] if complete else None

    def read_state(self, path: Path) -> dict[str, Any]:
        """The driver's state saved in the checkpoint ``path``."""
        return json.loads((path / STATE_FILE).read_text())

    def resume_point(self) -> Path | None:
        """The checkpoint ``checkpoint.resume`` asks for (None: start afresh)."""
        for partial in self.dir.glob(f"step_*{PARTIAL}") if self.dir.is_dir() else []:
            log.warning("ignoring incomplete checkpoint %s (a save was interrupted)", partial)
        if self.cfg.resume == "never":
            return None
        if self.cfg.resume == "auto":
            return self.newest()
        path = Path(self.cfg.resume)
        if not (path / STATE_FILE).is_file():
            raise FileNotFoundError(f"{self.field}.resume: {path} is not a complete checkpoint (no {STATE_FILE})")
        return path

    def save(self, step: int, state: dict[str, Any], groups: Mapping[str, RoleGroup]) -> Path:
        """Write the checkpoint of ``step``: every group's state, then the driver's ``state`` (JSON); older
        checkpoints beyond ``keep_last`` are deleted only once it is complete. A write that fails raises
        ``CheckpointWriteError``."""
        final = self.dir / f"step_{step}"
        partial = self.dir / f"step_{step}{PARTIAL}"
        try:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            for name, group in groups.items():
                group.save(str(partial / name)).result()
            faults.reach("checkpoint_write")
            (partial / STATE_FILE).write_text(json.dumps(state, indent=2))
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)  # on a full disk, gives back what the failed save took
            raise CheckpointWriteError(
                f"{self.field}.dir: the checkpoint of step {step} could not be written to {partial}: {_reason(exc)}; "
                "its partial folder was removed and the complete checkpoints are untouched "
                f"(newest: {self.newest() or 'none yet'})"
            ) from exc
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        for old in self.complete()[: -self.cfg.keep_last]:
            shutil.rmtree(old)
        return final

    def load(self, path: Path, groups: Mapping[str, RoleGroup]) -> dict[str, Any]:
        """Restore every group from ``path``; returns the driver's state."""
        for name, group in groups.items():
            group.load(str(path / name)).result()
        return self.read_state(path)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
