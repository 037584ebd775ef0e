"""Scheduled database backups: SQLite's online backup API, each copy integrity-checked, N kept."""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from pathlib import Path

from schema import migrate

PREFIX = "spool-daily-"


def backup(db: Path, backups: Path, now: datetime, keep: int) -> Path:
    conn = migrate.connect(db, busy_timeout_s=30)
    try:
        dest = migrate.backup(conn, backups / f"{PREFIX}{now.strftime('%Y%m%dT%H%M%SZ')}.db")
    finally:
        conn.close()
    for old in sorted(backups.glob(f"{PREFIX}*.db"))[:-keep]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(old)
    return dest
