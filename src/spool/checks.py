"""What can be wrong with a spool's folders and database file, seen from the filesystem alone.

The daemon checks this every couple of seconds (and pauses intake while something is wrong);
``spool health`` checks it from outside, so a daemon that cannot say so itself is still found out.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from spool.layout import Layout


def spool_folders(layout: Layout) -> list[Path]:
    """The folders every job passes through (the daemon must be able to write each)."""
    return [layout.inbox, layout.work, layout.outbox, layout.failed, layout.done]


def folder_problem(path: Path) -> str | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return f"{path.name}/ is missing"
    except OSError as e:
        return f"{path.name}/ cannot be looked at ({e.strerror})"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path.name}/ is not a directory"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{path.name}/ is not writable by this user (uid {os.geteuid()})"
    return None


def folder_problems(layout: Layout) -> list[str]:
    return [p for p in (folder_problem(d) for d in spool_folders(layout)) if p]


def file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def database_problem(db: Path, expected: tuple[int, int] | None) -> str | None:
    """The SQLite file a daemon writes into must still be the one at its path (not deleted or replaced)."""
    now = file_identity(db)
    if now is None:
        return f"{db} was deleted while the daemon writes to it: every event since goes to a file nobody can open"
    if expected is not None and now != expected:
        return f"{db} was replaced while the daemon writes to the file it opened at start"
    return None
