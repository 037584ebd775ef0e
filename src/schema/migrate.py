"""Opening the database safely: create, check, back up, migrate.

Rules (see ``schema/migrations/README.md``):

* A new database is built under a temporary name and renamed into place only
  once fully migrated, so an existing ``spool.db`` always has a schema version.
  A file that has none, or that SQLite cannot read, is *damaged*: we refuse to
  start instead of silently making an empty one.
* A database newer than this code is refused.
* Before migrating an existing database it is copied with SQLite's online
  backup API into ``state/backups/``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from ground.durable import fsync_dir
from ground.errors import SpoolError
from schema.errors import DatabaseDamaged, SchemaTooNew, StoreBusy, StoreCannotOpen, StoreError, StoreFull

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, Path]]:
    found = []
    for p in sorted(MIGRATIONS_DIR.iterdir()):
        m = _NAME.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    numbers = [n for n, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise StoreError(f"migrations are not numbered 1..N without gaps: {numbers}")
    return found


def code_version() -> int:
    return len(migrations())


def is_busy(e: sqlite3.Error) -> bool:
    msg = str(e).lower()
    return "locked" in msg or "busy" in msg


def translate(e: sqlite3.Error, path: Path) -> SpoolError:
    """Turn an sqlite3 error into ours, with a message a user can act on."""
    msg = str(e).lower()
    if "disk is full" in msg or "database or disk is full" in msg:
        return StoreFull(str(path))
    if "malformed" in msg or "not a database" in msg or "disk i/o error" in msg:
        return DatabaseDamaged(str(path), str(e))
    if is_busy(e):
        return StoreBusy(str(path), 0)
    if "unable to open database file" in msg:
        return StoreCannotOpen(str(path))
    return StoreError(f"{path}: {e}")


def connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    return conn


def _configure(conn: sqlite3.Connection) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"could not switch the database to WAL (got {mode}); is it on a network share?")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")


def open_database(
    path: Path,
    *,
    create: bool,
    busy_timeout_s: float = 5.0,
    backup_dir: Path | None = None,
) -> sqlite3.Connection:
    """Open (creating if asked) and migrate the database; return a ready connection."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise StoreError(f"no spool database at {path}; start the daemon once (`spool run`) or run `spool init`")
        _create(path, busy_timeout_s)
    try:
        conn = connect(path, busy_timeout_s)
        # Look before touching: switching to WAL would write a header into an empty file.
        found = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as e:
        raise translate(e, path) from e
    known = code_version()
    if found == 0:
        conn.close()
        raise DatabaseDamaged(str(path), "it has no schema version: empty or truncated")
    if found > known:
        conn.close()
        raise SchemaTooNew(str(path), found, known)
    try:
        _configure(conn)
    except sqlite3.Error as e:
        conn.close()
        raise translate(e, path) from e
    if found < known:
        backup(conn, (backup_dir or path.parent / "backups") / _backup_name(found))
        _apply(conn, found)
    return conn


def _create(path: Path, busy_timeout_s: float) -> None:
    tmp = path.with_name(path.name + ".new")
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(tmp) + suffix)
    try:
        conn = connect(tmp, busy_timeout_s)
        try:
            # The temporary file uses a rollback journal so that it is one
            # self-contained file at rename time; WAL is switched on after.
            conn.execute("PRAGMA journal_mode = DELETE")
            _apply(conn, 0)
        finally:
            conn.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException as e:
        for suffix in ("", "-journal"):  # a failed creation leaves no half-made file behind
            with contextlib.suppress(OSError):
                os.unlink(str(tmp) + suffix)
        if isinstance(e, sqlite3.Error):
            raise translate(e, path) from e
        raise
    fsync_dir(path.parent)


def _apply(conn: sqlite3.Connection, found: int) -> None:
    for number, sql_path in migrations():
        if number <= found:
            continue
        sql = sql_path.read_text()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def apply_all(conn: sqlite3.Connection) -> None:
    """Every migration onto an empty database (the in-memory replay of ``replay --verify``)."""
    _apply(conn, 0)


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit implicitly)."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def _backup_name(version: int) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"spool-v{version}-{stamp}.db"


def backup(conn: sqlite3.Connection, dest: Path) -> Path:
    """Copy the live database with the online backup API and check the copy."""
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    tmp = dest.with_name(dest.name + ".tmp")
    target = sqlite3.connect(str(tmp))
    try:
        conn.backup(target)
        verdict = target.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        target.close()
    if verdict != "ok":
        os.unlink(tmp)
        raise StoreError(f"backup {dest} failed its integrity check: {verdict}")
    os.rename(tmp, dest)
    fsync_dir(dest.parent)
    return dest
