"""Detect a log that went backwards: a deleted WAL, or a database silently swapped for an older copy.

SQLite cannot know that committed frames vanished with a deleted ``-wal``
file: it opens the older state and carries on.  The daemon therefore writes
the log's high-water position to ``state/spool.position`` *after* each commit
it has made durable; at start a database whose position is below that mark
lost events, and the daemon refuses it rather than re-run or forget work.
After restoring a backup on purpose, delete the mark file (see
schema/migrations/README.md).
"""

from __future__ import annotations

import os
from pathlib import Path

from schema.errors import DatabaseDamaged


class PositionMark:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._last = -1

    def read(self) -> int | None:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def check(self, high_water: int, db: Path) -> None:
        mark = self.read()
        if mark is not None and high_water < mark:
            raise DatabaseDamaged(
                str(db),
                f"its log ends at position {high_water} but this spool had recorded {mark}: "
                f"the WAL was deleted or an older copy put in place. If you restored a backup on purpose, "
                f"delete {self.path}",
            )

    def check_exists(self, db: Path) -> None:
        """A spool that has recorded events but whose database is gone must not get a fresh, empty one."""
        mark = self.read()
        if mark and not db.exists():
            raise DatabaseDamaged(
                str(db),
                f"the file is missing but this spool had recorded {mark} events; restore it from "
                f"state/backups/, or delete {self.path} to start an empty log on purpose",
            )

    def record(self, high_water: int) -> None:
        """Cheap enough for every loop turn: a write only when the position moved, no fsync needed
        (the mark is written after the commit is durable, so it can lag but never lead)."""
        if high_water == self._last:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "w") as fh:
                fh.write(f"{high_water}\n")
            os.replace(tmp, self.path)
        except OSError:
            return  # a full disk: the mark lags (never leads); written again on the next turn
        self._last = high_water
