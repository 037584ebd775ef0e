"""One daemon per state directory: an exclusive ``flock`` on ``<state>/daemon.lock``.

The kernel releases the lock when the holder dies, however it dies, so a
``kill -9`` never leaves a stale lock behind; the pid written inside is only
there to make the second daemon's message useful.

A second lock on ``<root>/spool.lock`` guards the spool itself: a daemon with
its own SQLite store holds it exclusively (two private stores on one inbox
would transcribe every file twice); fleet daemons sharing a PostgreSQL store
hold it shared, so any number of them may run, but never beside a SQLite one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from ground.errors import SpoolError


class AlreadyRunning(SpoolError):
    exit_code = 3

    def __init__(self, root: Path, pid: str) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"another spoolscribe daemon ({who}) is already running on {root}; "
            "stop it first (SIGTERM) or use another --root"
        )


def _try_flock(path: Path, op: int) -> int | None:
    """An open fd of ``path`` holding ``flock(op)``; None when another process holds a conflicting lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class DaemonLock:
    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.root = root
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = _try_flock(self.path, fcntl.LOCK_EX)
        if fd is None:
            holder = ""
            with contextlib.suppress(OSError):
                holder = self.path.read_bytes()[:32].decode(errors="replace").strip()
            raise AlreadyRunning(self.root, holder)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            _unlock(self._fd)
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


class SpoolInUse(SpoolError):
    exit_code = 3

    def __init__(self, root: Path, shared: bool) -> None:
        if shared:
            msg = (
                f"a daemon with its own SQLite store is running on {root}; a fleet daemon cannot share "
                "the spool with it - stop it, or give it the fleet's store = postgresql://..."
            )
        else:
            msg = (
                f"another daemon is running on {root} (with its own state directory); two SQLite stores on "
                "one spool would transcribe every file twice - stop it, or run both on one "
                "store = postgresql://... (docs/scale-out.md)"
            )
        super().__init__(msg)


class SpoolLock:
    """``<root>/spool.lock``: exclusive for a SQLite daemon, shared among fleet daemons."""

    def __init__(self, root: Path, *, shared: bool) -> None:
        self.path = root / "spool.lock"
        self.root = root
        self.shared = shared
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = _try_flock(self.path, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        if fd is None:
            raise SpoolInUse(self.root, self.shared)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            _unlock(self._fd)
            self._fd = None
