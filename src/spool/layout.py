"""The spool's directory layout (see DESIGN.md, "Runtime layout")."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
        """Create every directory (0750: the spool is private to its group)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        for d in self.dirs():
            d.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            st = d.stat()
            if st.st_mode & 0o002:
                os.chmod(d, DIR_MODE)  # never leave a spool directory world-writable
