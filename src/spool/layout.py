"""The spool's directory layout (see DESIGN.md, "Runtime layout")."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ground.errors import LayoutError

DIR_MODE = 0o750


@dataclass(frozen=True)
class Layout:
    """Every path the daemon touches, derived from one root (and a state directory, <root>/state by default).

    In a fleet the spool (inbox/, work/, outbox/ ...) is shared and each host has its own state
    directory: its lock, its SQLite file if any, its reports.
    """

    root: Path
    state_dir: Path | None = None

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    @property
    def done(self) -> Path:
        return self.root / "done"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state(self) -> Path:
        return self.state_dir or self.root / "state"

    @property
    def db(self) -> Path:
        return self.state / "spool.db"

    @property
    def position_mark(self) -> Path:
        return self.state / "spool.position"

    @property
    def lock(self) -> Path:
        return self.state / "daemon.lock"

    @property
    def daemon_state(self) -> Path:
        return self.state / "daemon.json"

    @property
    def workers_file(self) -> Path:
        return self.state / "workers.json"

    @property
    def reports(self) -> Path:
        return self.state / "reports"

    @property
    def backups(self) -> Path:
        return self.state / "backups"

    @property
    def models(self) -> Path:
        return self.state / "models"

    @property
    def config(self) -> Path:
        return self.root / "spool.toml"

    def job_dir(self, job_id: str) -> Path:
        return self.work / job_id

    def staging(self, job_id: str) -> Path:
        return self.work / job_id / "out"

    def job_log(self, job_id: str) -> Path:
        return self.logs / f"{job_id}.log"

    def dirs(self) -> list[Path]:
        return [
            self.inbox,
            self.work,
            self.outbox,
            self.failed,
            self.done,
            self.logs,
            self.state,
            self.reports,
            self.backups,
        ]

    def ensure(self) -> None:
        """Create every directory (0750: the spool is private to its group).

        The spool's own folders must be real directories: nothing in the spool follows a
        symlink (an inbox that was one was silently never read), so one is refused at start.
        Another filesystem mounted there is fine: moves across it are copied and fsync'd.
        """
        self.root.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        for d in self.dirs():
            self._refuse_link(d)
            d.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            st = os.lstat(d)
            if not stat.S_ISDIR(st.st_mode):
                raise LayoutError(str(d), "is not a directory; move it away so the spool can create its folder")
            if st.st_mode & 0o002:
                os.chmod(d, DIR_MODE)  # never leave a spool directory world-writable

    def _refuse_link(self, d: Path) -> None:
        if d.is_symlink() and d.parent == self.root:
            raise LayoutError(
                str(d),
                f"is a symlink (to {os.readlink(d)}); the spool never follows symlinks: make it a directory "
                "(mount the other filesystem there instead), or set root/state_dir to the real location",
            )
