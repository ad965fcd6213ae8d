"""The file of judgements: one JSON line per judgement, appended and on disk before anyone is told it is kept.

Every append holds an exclusive ``flock`` on the file and writes its line with one ``write`` to a file
opened for appending, then ``fsync``s: writers in one process (the app's request threads) or in several
never interleave their lines. A line cut short by a crash (the only damage a killed writer can leave) was
never acknowledged, so opening the file removes it, and says so.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class StoreError(ValueError):
    """A judgements file that cannot be continued as it is (a complete line that is not a JSON object)."""


class JudgementStore:
    """Append-only JSONL of judgements at ``path`` (created with its folder when missing)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self._thread_lock = threading.Lock()
        if created:
            _fsync_folder(self.path.parent)  # the file's name is on disk too, not only its lines
        with self._locked():
            self._drop_torn_tail()

    def close(self) -> None:
        os.close(self._fd)

    def rows(self) -> list[dict[str, Any]]:
        """Every judgement in the file, in the order they were kept."""
        with self._locked():
            return read_judgements(self.path)

    def append(self, row: dict[str, Any]) -> None:
        """Write ``row`` as one line and return once it is on disk."""
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode()
        with self._locked():
            written = os.write(self._fd, line)
            if written != len(line):  # a full disk: take the torn line back out before failing
                self._drop_torn_tail()
                raise OSError(f"{self.path}: wrote {written} of {len(line)} bytes of a judgement")
            os.fsync(self._fd)

    @contextmanager
    def _locked(self):
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _drop_torn_tail(self) -> None:
        """Cut an unfinished last line (no newline: its write was cut short) off the file."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        log.warning("%s: removed an unfinished last line of %d bytes (a write cut short)", self.path, size - keep)
        os.ftruncate(self._fd, keep)
        os.fsync(self._fd)


def read_judgements(path: str | Path) -> list[dict[str, Any]]:
    """The judgements of a file, without changing it: an unfinished last line (a write cut short) is not one."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such judgements file")
    rows = []
    for number, line in enumerate(path.read_bytes().decode().split("\n")[:-1], 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise StoreError(f"{path}:{number}: not a judgement: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise StoreError(f"{path}:{number}: not a judgement: a line must be a JSON object")
        rows.append(row)
    return rows


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
