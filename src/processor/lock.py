"""One daemon per spool root: an exclusive ``flock`` on ``state/daemon.lock``.

The kernel releases the lock when the holder dies, however it dies, so a
``kill -9`` never leaves a stale lock behind; the pid written inside is only
there to make the second daemon's message useful.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from schema.errors import SpoolError


class AlreadyRunning(SpoolError):
    exit_code = 3

    def __init__(self, root: Path, pid: str) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"another spoolscribe daemon ({who}) is already running on {root}; "
            "stop it first (SIGTERM) or use another --root"
        )


class DaemonLock:
    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.root = root
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise AlreadyRunning(self.root, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
            self._fd = None


def holder_pid(path: Path) -> int | None:
    """The pid of the running daemon, or None when nobody holds the lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
