"""Per-job log files, size-rotated (``<job>.log``, ``.1``, ``.2`` ...).

Python's ``logging.FileHandler`` swallows write errors (a full disk goes
unnoticed), so this small writer counts them instead; the count is a metric
and an alert.  Writes come from a worker's stderr reader thread and from the
daemon, hence the lock.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path


class RotatingLog:
    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.errors = 0
        self._fd: int | None = None
        self._size = 0
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            try:
                if self._fd is None:
                    self._open()
                if self._size + len(data) > self.max_bytes and self._size > 0:
                    self._rotate()
                assert self._fd is not None
                os.write(self._fd, data)
                self._size += len(data)
            except OSError:
                self.errors += 1

    def line(self, text: str) -> None:
        self.write(text.encode("utf-8", "replace").rstrip(b"\n") + b"\n")

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.backups == 0:
            os.truncate(self.path, 0)
        else:
            for i in range(self.backups - 1, 0, -1):
                older = Path(f"{self.path}.{i}")
                if older.exists():
                    os.replace(older, f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
        self._open()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None


def append_late(path: Path, data: bytes) -> bool:
    """A line that arrives after its job's log was closed (stdout and stderr are separate pipes)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        os.write(fd, data)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
