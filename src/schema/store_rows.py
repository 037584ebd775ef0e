"""How jobs and events are stored as rows, in the SQL both backends share: the leaves every store module uses.

The keys that make the database refuse a second job for one dropped file
(``intake_key``, ``hold_key``) and the one spelling of a transcript name's
owner (``out_key``) are computed here, so no writer can spell them differently.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from schema.jobs import Job
from schema.mapper import Recorded, decode

Clock = Callable[[], datetime]


class _Any:
    """Sentinel: append at whatever version the stream is at."""

    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()


@dataclass(frozen=True)
class Leader:
    """Who holds a fleet's leader lock: the database session, and the daemon instance it belongs to."""

    pid: int
    instance: str | None  # None: a session that names no daemon instance


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Executor(Protocol):
    """A connection inside a transaction, speaking ``?`` SQL whatever the backend."""

    def execute(self, sql: str, args: Sequence[object] = ()) -> Cursor: ...


@dataclass(frozen=True)
class Dialect:
    """The SQL spellings that differ between backends."""

    name: str

    def json(self, column: str, key: str, kind: str = "text") -> str:
        if self.name == "sqlite":
            return f"json_extract({column}, '$.{key}')"
        cast = {"text": "", "real": "::float8", "int": "::bigint", "bool": "::boolean"}[kind]
        return f"(({column})::jsonb ->> '{key}'){cast}"

    def true(self) -> str:
        return "1" if self.name == "sqlite" else "true"


def out_key(out_stem: str | None) -> bytes | None:
    """Collision key of an outbox stem: case- and normalisation-insensitive, as bytes.

    Case-insensitive because macOS volumes are; NFC because a name typed on
    macOS (NFD) and on Linux (NFC) must not produce two transcripts that the
    user sees as one.  Bytes because non-UTF-8 names are surrogate-escaped.
    """
    if out_stem is None:
        return None
    return unicodedata.normalize("NFC", out_stem).casefold().encode("utf-8", "surrogateescape")


def intake_key(job: Job) -> str | None:
    """What makes two notices of one dropped file the same (unique while the job is unfinished).

    The file's identity only, never how it was settled: in a fleet one host may see a file's
    rename and another only see it stand still, and both notices must meet on this key.
    """
    if job.state.terminal:
        return None
    # ASCII (json.dumps escapes non-UTF-8 names): PostgreSQL text takes neither NUL nor surrogates.
    return f"{job.size}:{job.mtime_ns}:{json.dumps(job.source)}"


def hold_key(job: Job) -> str | None:
    """The inbox name an unfinished job taken in place holds (unique: one such job per name)."""
    if job.state.terminal or not job.holds_inbox_name:
        return None
    return held_key(job.source)


def held_key(source: str) -> str:
    return f"held:{json.dumps(source)}"


def write_job(x: Executor, job: Job) -> None:
    x.execute(
        "INSERT INTO jobs (id, state, version, submitted_at, updated_at, finished_at, sha256,"
        " options_key, out_key, intake_key, hold_key, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET state=excluded.state, version=excluded.version,"
        " updated_at=excluded.updated_at, finished_at=excluded.finished_at,"
        " sha256=excluded.sha256, options_key=excluded.options_key,"
        " out_key=excluded.out_key, intake_key=excluded.intake_key, hold_key=excluded.hold_key,"
        " doc=excluded.doc",
        (
            job.id,
            job.state.value,
            job.version,
            job.submitted_at,
            job.updated_at,
            job.finished_at,
            job.sha256,
            job.options_key,
            out_key(job.out_stem),
            intake_key(job),
            hold_key(job),
            json.dumps(job.to_dict(), separators=(",", ":"), sort_keys=True),
        ),
    )


def record(row: Any) -> Recorded:
    return Recorded(
        position=int(row["position"]),
        stream=row["stream"],
        version=int(row["version"]),
        at=row["at"],
        event=decode(row["type"], int(row["class_version"]), row["data"]),
        idempotency_key=row["idempotency_key"],
    )


def _job(row: Any) -> Job:
    return Job.from_dict(json.loads(row[0]))
