"""Opening the database: created atomically, migrated with a backup first, damage refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from schema import migrate
from schema.errors import DatabaseDamaged, SchemaTooNew, StoreError
from schema.sqlite_store import SQLiteEventStore
from tests.unit.events_fixtures import submitted


def test_new_database_is_at_the_code_version_and_in_wal(tmp_path: Path) -> None:
    s = SQLiteEventStore(tmp_path / "spool.db", create=True)
    conn = s._conn
    assert conn.execute("PRAGMA user_version").fetchone()[0] == migrate.code_version()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    s.close()
    assert not (tmp_path / "spool.db.new").exists()


def test_missing_database_is_not_created_by_readers(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no spool database"):
        SQLiteEventStore(tmp_path / "spool.db")
    assert not (tmp_path / "spool.db").exists()


def test_zero_byte_database_is_damaged_not_recreated(tmp_path: Path) -> None:
    db = tmp_path / "spool.db"
    db.write_bytes(b"")
    with pytest.raises(DatabaseDamaged, match="no schema version"):
        SQLiteEventStore(db, create=True)
    assert db.stat().st_size == 0


def test_garbage_database_is_damaged(tmp_path: Path) -> None:
    db = tmp_path / "spool.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseDamaged, match="Restore it from state/backups"):
        SQLiteEventStore(db, create=True)


def test_truncated_database_fails_its_check(tmp_path: Path) -> None:
    db = tmp_path / "spool.db"
    s = SQLiteEventStore(db, create=True)
    for i in range(300):
        s.append(f"job-{i}", [submitted(str(i))])
    s.close()
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(DatabaseDamaged):
        s2 = SQLiteEventStore(db)
        verdict = s2.quick_check()
        s2.jobs()
        if verdict != "ok":
            raise DatabaseDamaged(str(db), verdict)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "spool.db"
    SQLiteEventStore(db, create=True).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {migrate.code_version() + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew, match="upgrade spoolscribe"):
        SQLiteEventStore(db)


def test_migrating_an_older_database_backs_it_up_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "spool.db"
    s = SQLiteEventStore(db, create=True)
    s.append("job-a", [submitted("a")])
    s.close()
    extra = tmp_path / "migrations"
    extra.mkdir()
    for _number, path in migrate.migrations():
        (extra / path.name).write_text(path.read_text())
    nxt = migrate.code_version() + 1
    (extra / f"{nxt:04d}_test_column.sql").write_text("ALTER TABLE jobs ADD COLUMN note TEXT;\n")
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", extra)
    s = SQLiteEventStore(db, backup_dir=tmp_path / "backups")
    assert s._conn.execute("PRAGMA user_version").fetchone()[0] == nxt
    s.close()
    backups = list((tmp_path / "backups").glob("spool-v*.db"))
    assert len(backups) == 1
    old = sqlite3.connect(backups[0])
    assert old.execute("PRAGMA user_version").fetchone()[0] == nxt - 1
    assert old.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
    old.close()


def test_migrations_are_numbered_without_gaps() -> None:
    numbers = [n for n, _ in migrate.migrations()]
    assert numbers == list(range(1, len(numbers) + 1))


# --- PostgreSQL: the same runner rules ----------------------------------------------------


@pytest.mark.postgres
def test_postgres_newer_schema_is_refused_with_the_password_hidden(pg_url: str, tmp_path: Path) -> None:
    import psycopg

    from schema.store import open_store

    open_store(pg_url, tmp_path / "x.db", create=True).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO spool_schema (version) VALUES (999)")
    secret = pg_url.replace("postgresql://postgres@", "postgresql://postgres:hunter2@")
    with pytest.raises(SchemaTooNew, match="upgrade spoolscribe") as err:
        open_store(secret, tmp_path / "x.db")
    assert "hunter2" not in str(err.value) and "postgres:***@" in str(err.value)


@pytest.mark.postgres
def test_postgres_empty_database_is_not_created_by_readers(pg_url: str, tmp_path: Path) -> None:
    from schema.store import open_store

    with pytest.raises(StoreError, match=r"no spoolscribe schema in .*spool migrate --create"):
        open_store(pg_url, tmp_path / "x.db")


@pytest.mark.postgres
def test_postgres_daemons_starting_together_migrate_once(pg_url: str, tmp_path: Path) -> None:
    import threading

    from schema.store import open_store

    errors: list[BaseException] = []

    def start() -> None:
        try:
            open_store(pg_url, tmp_path / "x.db", create=True).close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    store = open_store(pg_url, tmp_path / "x.db")
    assert store.schema_version() == store.known_version()
    store.close()


def test_postgres_migrations_are_numbered_without_gaps() -> None:
    from schema.pg_store import MIGRATIONS

    numbers = sorted(int(p.name[:4]) for p in MIGRATIONS.glob("*.sql"))
    assert numbers == list(range(1, len(numbers) + 1))
