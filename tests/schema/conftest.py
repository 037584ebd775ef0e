"""The store contract runs against every backend: SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from schema.sqlite_store import SQLiteEventStore
from schema.store import EventStore, open_store
from tests.pg import pg_url  # noqa: F401 - a fixture


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "sqlite":
        s: EventStore = SQLiteEventStore(tmp_path / "spool.db", create=True, retry_deadline_s=2.0)
    else:
        s = open_store(request.getfixturevalue("pg_url"), tmp_path / "unused.db", create=True)
    yield s
    s.close()


@pytest.fixture
def pg_store(pg_url: str, tmp_path: Path) -> Iterator[EventStore]:  # noqa: F811 - pg_url is the fixture
    """The PostgreSQL backend alone, for what only it does (row locks held by another session)."""
    s = open_store(pg_url, tmp_path / "unused.db", create=True)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteEventStore]:
    s = SQLiteEventStore(tmp_path / "spool.db", create=True, retry_deadline_s=2.0)
    yield s
    s.close()
