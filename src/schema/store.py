"""The ``EventStore`` port: what the rest of spoolscribe may ask of any event store.

SQLite is the embedded default (:mod:`schema.sqlite_store`); every backend must
pass ``tests/schema/test_store_contract.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from schema.events import Event
from schema.jobs import Job, JobState
from schema.mapper import Recorded


class _Any:
    """Sentinel: append at whatever version the stream is at."""

    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()


class EventStore(Protocol):
    def append(
        self,
        stream: str,
        events: Sequence[Event],
        *,
        expected_version: int | _Any = ANY,
        idempotency_key: str | None = None,
    ) -> list[Recorded]: ...

    def read(self, stream: str, after_version: int = 0) -> list[Recorded]: ...

    def read_all(
        self, after_position: int = 0, limit: int | None = None, types: Sequence[str] = ()
    ) -> list[Recorded]: ...

    def follow(self, after_position: int = 0, poll_s: float = 0.2) -> Iterator[Recorded]: ...

    def last_position(self) -> int: ...

    def job(self, job_id: str) -> Job | None: ...

    def find_job(self, ref: str) -> Job: ...

    def jobs(self, states: Sequence[JobState] = (), limit: int | None = None) -> list[Job]: ...

    def count_by_state(self) -> dict[str, int]: ...

    def close(self) -> None: ...
