"""PostgreSQL for the tests: a fresh schema per test on the server at $SPOOL_TEST_PG.

Tests that need it skip with a clear reason where no server can be reached
(a laptop without PostgreSQL); CI starts one (.ci/run).
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
from collections.abc import Iterator

import pytest

URL = os.environ.get("SPOOL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def unreachable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(URL, connect_timeout=3):
            return None
    except Exception as e:
        return f"PostgreSQL not reachable at {URL} ({str(e).strip()[:120]}); start one or set SPOOL_TEST_PG"


def schema_url(schema: str) -> str:
    sep = "&" if "?" in URL else "?"
    return f"{URL}{sep}options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    """A new, empty schema on the test server for the block (a store URL naming it); dropped afterwards."""
    import psycopg

    schema = "spooltest_" + secrets.token_hex(5)
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(schema)
    finally:
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def pg_url() -> Iterator[str]:
    reason = unreachable()
    if reason:
        pytest.skip(reason)
    with fresh_schema() as url:
        yield url
