"""The spool's folders and database file, looked at every couple of seconds from inside the daemon.

A missing folder is made again (and queued to be recorded as an event); one that
cannot be written, or a database file deleted or replaced under the daemon, is a
problem: the daemon pauses intake while any is present.  ``spool health`` reads
the same problems from ``state/daemon.json`` from outside.
"""

from __future__ import annotations

import contextlib
import shutil
from typing import Any

from spool import checks
from spool.layout import Layout


class SpoolWatch:
    def __init__(self, layout: Layout, log: Any, period_s: float) -> None:
        self.layout, self.log, self.period_s = layout, log, period_s
        self.problems: list[str] = []  # what is wrong with the spool's folders or database file now
        self.recreated: list[str] = []  # folders made again, not yet recorded as events
        self.db_identity: tuple[int, int] | None = None  # the SQLite file this daemon opened
        self._last = -1e9
        self._last_disk = -1e9

    def due(self, now: float) -> bool:
        if now - self._last < self.period_s:
            return False
        self._last = now
        return True

    def look(self) -> list[str]:
        """Recreate what is missing, then the problems that remain (logged when they change)."""
        for folder in checks.spool_folders(self.layout):
            if checks.folder_problem(folder) == f"{folder.name}/ is missing":
                with contextlib.suppress(OSError):
                    folder.mkdir(mode=0o750)
                    self.recreated.append(folder.name)
                    self.log.error("spool.folder_recreated", folder=str(folder))
        problems = checks.folder_problems(self.layout)
        if self.db_identity is not None:
            db = checks.database_problem(self.layout.db, self.db_identity)
            problems += [db] if db else []
        if problems != self.problems:
            if problems:
                self.log.error("spool.problem", problems=problems)
            else:
                self.log.warning("spool.problem_resolved", previous=self.problems)
            self.problems = problems
        return problems

    def disk(self, now: float, floor_mb: float, paused: str | None) -> str | None:
        """``low`` when free space fell below the floor while intake runs, ``enough`` when it is back
        (10 % above) while intake is paused for it (``paused == "disk_full"``), else None.

        statvfs is cheap: looked at each second, so intake resumes within a second of space returning.
        """
        if now - self._last_disk < 1.0:
            return None
        self._last_disk = now
        free_mb = shutil.disk_usage(self.layout.root).free // 2**20
        if free_mb < floor_mb and paused is None:
            self.log.error("intake.paused", reason="disk_full", free_mb=free_mb, floor_mb=floor_mb)
            return "low"
        if paused == "disk_full" and free_mb >= floor_mb * 1.1:
            self.log.warning("intake.resumed", previous="disk_full", free_mb=free_mb)
            return "enough"
        return None
