"""The store contract runs against every backend; PostgreSQL joins the list in the scale-out issue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from schema.sqlite_store import SQLiteEventStore


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteEventStore]:
    s = SQLiteEventStore(tmp_path / "spool.db", create=True, retry_deadline_s=2.0)
    yield s
    s.close()
