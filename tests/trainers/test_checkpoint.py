"""Checkpoints: atomic, pruned, and resumed from the newest complete one; a folder that cannot be written
fails before anything starts, and a save that fails (a full disk) leaves the previous checkpoints."""

import errno
import logging
import os
from pathlib import Path

import pytest

from rlhf_ray.config.schema import CheckpointConfig
from rlhf_ray.trainers.checkpoint import Checkpointer, CheckpointWriteError


class FakeGroup:
    """Stands in for a role group's save/load calls (which every rank makes into the folder)."""

    def __init__(self, fail_on_save: bool = False):
        self.loaded: list[str] = []
        self.fail_on_save = fail_on_save

    def save(self, directory: str) -> "FakeGroup":
        Path(directory).mkdir(parents=True)
        (Path(directory) / "weights").write_text("w")
        if self.fail_on_save:
            raise KeyboardInterrupt("killed mid-save")
        return self

    def load(self, directory: str) -> "FakeGroup":
        self.loaded.append(directory)
        return self

    def result(self) -> None:
        """What a group call's result() waits for: here the call is already done."""


class FullDiskGroup(FakeGroup):
    """A group whose ranks run out of disk space halfway through writing their state."""

    def save(self, directory: str) -> "FullDiskGroup":
        super().save(directory)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def roles(critic=True, fail_on_save=False):
    groups = {"policy": FakeGroup(fail_on_save)}
    if critic:
        groups["critic"] = FakeGroup()
    return groups


def state(step: int) -> dict:
    return {"step": step, "kl_controller": {"value": 0.1}, "sampler": {"epoch": 0, "position": step}}


def test_saves_are_complete_and_pruned(tmp_path):
    checkpoints = Checkpointer(CheckpointConfig(dir=str(tmp_path), keep_last=2))
    for step in (1, 2, 3):
        checkpoints.save(step, state(step), roles())
    assert [p.name for p in checkpoints.complete()] == ["step_2", "step_3"]
    assert (tmp_path / "step_3" / "policy" / "weights").is_file()
    assert (tmp_path / "step_3" / "critic" / "weights").is_file()
    assert checkpoints.resume_point() == tmp_path / "step_3"


def test_a_save_killed_midway_leaves_the_previous_checkpoint(tmp_path, caplog):
    checkpoints = Checkpointer(CheckpointConfig(dir=str(tmp_path)))
    checkpoints.save(4, state(4), roles())
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save(5, state(5), roles(fail_on_save=True))
    assert (tmp_path / "step_5.partial").is_dir() and not (tmp_path / "step_5").exists()
    with caplog.at_level(logging.WARNING):
        assert checkpoints.resume_point() == tmp_path / "step_4"
    assert "ignoring incomplete checkpoint" in caplog.text and "step_5.partial" in caplog.text
    groups = roles()
    loaded = checkpoints.load(tmp_path / "step_4", groups)
    assert loaded == state(4)
    assert groups["policy"].loaded == [str(tmp_path / "step_4" / "policy")]
    checkpoints.save(5, state(5), roles())
    assert [p.name for p in checkpoints.complete()] == ["step_4", "step_5"]


def test_resume_modes(tmp_path):
    assert Checkpointer(CheckpointConfig(dir=str(tmp_path / "none"))).resume_point() is None
    checkpoints = Checkpointer(CheckpointConfig(dir=str(tmp_path), resume="never"))
    checkpoints.save(1, state(1), roles(critic=False))
    assert checkpoints.resume_point() is None
    explicit = Checkpointer(CheckpointConfig(dir=str(tmp_path), resume=str(tmp_path / "step_1")))
    assert explicit.resume_point() == tmp_path / "step_1"
    missing = Checkpointer(CheckpointConfig(dir=str(tmp_path), resume=str(tmp_path / "step_9")))
    with pytest.raises(FileNotFoundError, match="step_9 is not a complete checkpoint"):
        missing.resume_point()


def test_a_folder_that_cannot_be_written_fails_at_once_naming_it(tmp_path):
    # Tests run as root, whom permission bits do not stop: a regular file in the path does.
    (tmp_path / "a_file").write_text("")
    folder = tmp_path / "a_file" / "checkpoints"
    with pytest.raises(CheckpointWriteError) as error:
        Checkpointer(CheckpointConfig(dir=str(folder)), "sft.checkpoint")
    assert str(error.value).startswith(f"sft.checkpoint.dir: cannot write checkpoints to {folder}: Not a directory")
    writable = Checkpointer(CheckpointConfig(dir=str(tmp_path / "new" / "checkpoints")))
    assert writable.dir.is_dir() and list(writable.dir.iterdir()) == []  # created, and the probe removed


def test_a_full_disk_fails_the_save_naming_folder_and_step_and_keeps_the_previous_checkpoint(tmp_path):
    checkpoints = Checkpointer(CheckpointConfig(dir=str(tmp_path), keep_last=1))
    checkpoints.save(1, state(1), roles())
    with pytest.raises(CheckpointWriteError) as error:
        checkpoints.save(2, state(2), {"policy": FakeGroup(), "critic": FullDiskGroup()})
    assert str(error.value) == (
        f"checkpoint.dir: the checkpoint of step 2 could not be written to {tmp_path / 'step_2.partial'}: No space "
        f"left on device; its partial folder was removed and the complete checkpoints are untouched (newest: "
        f"{tmp_path / 'step_1'})"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["step_1"]
    assert checkpoints.resume_point() == tmp_path / "step_1"
    assert checkpoints.load(tmp_path / "step_1", roles()) == state(1)
