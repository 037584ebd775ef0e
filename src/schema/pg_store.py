"""The PostgreSQL event store: several daemons (hosts) sharing one log.

Same tables, same fold, same queries as SQLite (:mod:`schema.base_store`);
what PostgreSQL adds:

* every append takes a transaction-scoped advisory lock first, so positions
  commit in order and a follower reading ``position > cursor`` never skips an
  event committed late;
* new work (``job.submitted``, retries, requeues) sends ``NOTIFY spool_jobs``
  from inside the committing transaction; idle daemons ``LISTEN``;
* one host at a time holds a session-level advisory lock (leadership for the
  scheduled sweeps), released by the server when that host's session dies;
  a leader whose lease ran out while its session lives on (a frozen process,
  a half-open connection) has that session terminated by the host taking over;
* a session that stops mid-transaction (frozen, cut off) is ended by the
  server after ``idle_in_transaction_session_timeout`` (a quarter of the
  lease), so its locks never stall the fleet for longer than that;
* advisory locks are keyed by the schema, so several spools can share one
  database in separate schemas;
* migrations are numbered SQL files in ``pg_migrations/`` with SQLite's runner
  rules: refuse a newer schema, clear errors, serialised by an advisory lock.
"""

from __future__ import annotations

import contextlib
import re
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import tuple_row

from ground.times import utc_now
from schema.base_store import BaseEventStore, Clock, Dialect, Executor, Leader
from schema.errors import AlreadySubmitted, SchemaTooNew, StoreError, StoreRefused, StoreUnreachable
from schema.events import JobInputChanged, JobRequeued, JobRetryScheduled, JobSubmitted
from schema.mapper import Recorded

MIGRATIONS = Path(__file__).parent / "pg_migrations"
# Advisory locks: (crc32 of the schema name, purpose), so spools in separate schemas never contend.
APPEND_LOCK = 1
MIGRATE_LOCK = 2
LEADER_LOCK = 3
CHANNEL = "spool_jobs"
WAKE = (JobSubmitted.type, JobRetryScheduled.type, JobRequeued.type, JobInputChanged.type)


class Row(tuple[Any, ...]):
    """A result row readable by index and by column name, like ``sqlite3.Row``."""

    _index: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    index = {c.name: i for i, c in enumerate(cursor.description or [])}

    def make(values: Sequence[Any]) -> Row:
        row = Row(bytes(v) if isinstance(v, memoryview) else v for v in values)
        row._index = index
        return row

    return make


def to_pg(sql: str) -> str:
    """``?`` placeholders to psycopg's ``%s`` (a literal ``%`` doubled first)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgExecutor:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, args: Sequence[object] = ()) -> Any:
        return self._conn.execute(to_pg(sql), tuple(args))


class PgDialect(Dialect):
    def json(self, column: str, key: str, kind: str = "text") -> str:
        base = super().json(column, key, kind)
        return f'({base} COLLATE "C")' if kind == "text" else base


def _numbered() -> list[tuple[int, Path]]:
    found = sorted((int(p.name[:4]), p) for p in MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    if [n for n, _ in found] != list(range(1, len(found) + 1)):
        raise StoreError(f"PostgreSQL migrations are not numbered 1..N: {[n for n, _ in found]}")
    return found


def one_line(e: Exception) -> str:
    """libpq's messages span lines (with hints); ours are one line on stderr."""
    return " ".join(str(e).split())


def redact(url: str) -> str:
    """A URL fit to print: the password hidden whether in the authority or the query string."""
    url = re.sub(r"//([^:@/]+):[^@/]*@", r"//\1:***@", url)
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)


SESSION_PREFIX = "spoolscribe"
_SESSION = re.compile(rf"^{SESSION_PREFIX} ([0-9a-f]{{6}})$")


def session_name(instance: str) -> str:
    """``application_name`` of a daemon's sessions: the instance only, fixed width, well under 63 bytes.

    Host names are looked up in the leases by instance, never parsed out of this (PostgreSQL cuts
    ``application_name`` at 63 bytes and replaces non-ASCII characters).
    """
    return f"{SESSION_PREFIX} {instance}"


def instance_of(name: str) -> str | None:
    m = _SESSION.match(name or "")
    return m.group(1) if m else None


def _no_rights(url: str, e: Exception) -> StoreError:
    return StoreRefused(
        f"PostgreSQL at {redact(url)} refused: {one_line(e)}; the role needs the rights in docs/scale-out.md "
        "(Roles and rights)"
    )


class PostgresEventStore(BaseEventStore):
    dialect = PgDialect("postgresql")
    fleet = True

    def __init__(
        self,
        url: str,
        *,
        clock: Clock = utc_now,
        create: bool = False,
        upgrade: bool | None = None,
        idle_timeout_s: float = 5.0,
    ) -> None:
        """``create``: make the schema in an empty one; ``upgrade`` (default: as ``create``): migrate an
        older one.  Neither: the store only reads (and appends events): it never changes the schema."""
        super().__init__(clock)
        self.url = url
        self.path = Path("/dev/null")  # there is no database file to back up or stat
        self.idle_timeout_s = idle_timeout_s
        self.application_name = SESSION_PREFIX
        self._ns = 0
        self._conn = self._connect()
        self._leader: psycopg.Connection[Any] | None = None
        try:
            schema = self._read("SELECT current_schema()")[0][0]
            if schema is None:
                raise StoreError(
                    f"{redact(self.url)}: the schema its search_path names does not exist; create it "
                    "(CREATE SCHEMA ...) or fix options=-csearch_path=... in the URL"
                )
            self._ns = zlib.crc32(str(schema).encode()) & 0x7FFFFFFF
            self._migrate(create, create if upgrade is None else upgrade)
        except BaseException:
            self._conn.close()  # refused: leave no session behind
            raise

    def _connect(self, **kw: Any) -> psycopg.Connection[Any]:
        try:
            # named in the startup packet: a session is never visible without its daemon's name
            conn = psycopg.connect(self.url, autocommit=True, application_name=self.application_name, **kw)
            conn.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, false),"
                " set_config('application_name', %s, false)",
                (f"{max(100, int(self.idle_timeout_s * 1000))}ms", self.application_name),
            )
            if "row_factory" not in kw:
                conn.row_factory = row_factory
            return conn
        except psycopg.Error as e:
            raise StoreUnreachable(f"cannot reach PostgreSQL at {redact(self.url)}: {one_line(e)}") from None

    def identify(self, host: str, instance: str) -> None:
        """Name this daemon's sessions (``pg_stat_activity``): how a successor finds a stale leader."""
        self.application_name = session_name(instance)
        with self._lock:
            self._conn.execute("SELECT set_config('application_name', %s, false)", (self.application_name,))

    # --- migrations ------------------------------------------------------------------

    def _migrate(self, create: bool, upgrade: bool) -> None:
        """Use only a schema whose marker (``spool_schema``) says it is ours; change it only when asked."""
        known = _numbered()
        found = self._schema_marker()
        if found is None:
            foreign = self._read("SELECT to_regclass('events'), to_regclass('jobs')")[0]
            if any(foreign):
                raise StoreError(
                    f"{redact(self.url)}: this schema holds tables named events/jobs that are not spoolscribe's "
                    "(no spool_schema marker); give spoolscribe a schema of its own (options=-csearch_path=...)"
                )
            if not create:
                raise StoreError(
                    f"no spoolscribe schema in {redact(self.url)}; start a daemon on it once "
                    "or run `spool migrate --create`"
                )
        elif found > len(known):
            raise SchemaTooNew(redact(self.url), found, len(known))
        elif found < len(known) and not upgrade:
            raise StoreError(
                f"{redact(self.url)} has schema version {found}; this spoolscribe needs {len(known)}: "
                "run `spool migrate` (a daemon migrates it at its start too)"
            )
        if found is None or found < len(known):
            self._apply_migrations(known)

    def _schema_marker(self) -> int | None:
        """The schema version recorded here, or None when there is no marker (not ours, or empty)."""
        if self._read("SELECT to_regclass('spool_schema')")[0][0] is None:
            return None
        row = self._read("SELECT MAX(version) FROM spool_schema")[0][0]
        return int(row) if row is not None else 0

    def _apply_migrations(self, known: list[tuple[int, Path]]) -> None:
        with self._lock:
            try:
                self._conn.execute("SELECT pg_advisory_lock(%s, %s)", (self._ns, MIGRATE_LOCK))
                try:
                    self._conn.execute("CREATE TABLE IF NOT EXISTS spool_schema (version INTEGER NOT NULL)")
                    row = self._conn.execute("SELECT MAX(version) FROM spool_schema").fetchone()
                    found = int(row[0]) if row and row[0] is not None else 0  # another host may have run them
                    for number, path in known:
                        if number > found:
                            with self._conn.transaction():
                                self._conn.execute(path.read_text())
                                self._conn.execute("INSERT INTO spool_schema (version) VALUES (%s)", (number,))
                finally:
                    self._conn.execute("SELECT pg_advisory_unlock(%s, %s)", (self._ns, MIGRATE_LOCK))
            except pg_errors.InsufficientPrivilege as e:
                raise _no_rights(self.url, e) from None

    def schema_version(self) -> int:
        return int(self._read("SELECT MAX(version) FROM spool_schema")[0][0])

    def known_version(self) -> int:
        return len(_numbered())

    # --- the backend's part --------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[Executor]:
        with self._lock:
            self._ensure_connected()
            try:
                with self._conn.transaction():
                    yield PgExecutor(self._conn)
            except pg_errors.UniqueViolation as e:
                if "jobs_intake" in str(e) or "jobs_hold" in str(e):
                    raise AlreadySubmitted(one_line(e)) from e
                raise StoreError(f"PostgreSQL refused a write: {one_line(e)}") from e
            except pg_errors.InsufficientPrivilege as e:
                raise _no_rights(self.url, e) from None
            except psycopg.OperationalError as e:
                self._reconnect()
                raise StoreError(f"PostgreSQL connection failed: {one_line(e)}") from e

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        with self._lock:
            self._ensure_connected()
            try:
                return self._conn.execute(to_pg(sql), tuple(args)).fetchall()
            except pg_errors.InsufficientPrivilege as e:
                raise _no_rights(self.url, e) from None
            except psycopg.OperationalError as e:
                self._reconnect()
                raise StoreError(f"PostgreSQL connection failed: {one_line(e)}") from e

    def _ensure_connected(self) -> None:
        """A connection lost earlier (and not yet made again: the server was down) is made now, first."""
        if self._conn.closed or self._conn.broken:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = self._connect()

    def _begin_snapshot(self) -> None:
        try:
            self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            # folding a long log between reads is not the idleness the session timeout guards against
            self._conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        except psycopg.OperationalError as e:
            self._reconnect()
            raise StoreError(f"PostgreSQL connection failed: {one_line(e)}") from e

    def _end_snapshot(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._conn.execute("COMMIT")

    def _reader(self) -> Executor:
        return PgExecutor(self._conn)

    def _cut_own_session(self) -> None:
        """End this connection's session from another one, as an administrator or a restart would:
        this client learns of it only when it next uses the connection."""
        with self._lock, contextlib.suppress(psycopg.Error):
            pid = self._conn.info.backend_pid
            with psycopg.connect(self.url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))

    def _inject_refusal(self) -> None:
        self._cut_own_session()  # the write that follows meets the dead session, as after a server restart

    def _inject_lost_ack(self) -> None:
        self._cut_own_session()
        self._reconnect()
        raise StoreError("PostgreSQL connection failed: the session ended as the commit returned (injected)")

    def _reconnect(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()
        with contextlib.suppress(StoreError):
            self._conn = self._connect()

    def _serialise(self, x: Executor) -> None:
        x.execute("SELECT pg_advisory_xact_lock(?, ?)", (self._ns, APPEND_LOCK))

    def _lock_job_row(self, x: Executor, job_id: str) -> None:
        x.execute("SELECT 1 FROM jobs WHERE id = ? FOR UPDATE", (job_id,))

    def _lock_for_claim(self, x: Executor, job_id: str) -> int | None:
        rows = x.execute("SELECT version FROM jobs WHERE id = ? FOR UPDATE SKIP LOCKED", (job_id,)).fetchall()
        return int(rows[0][0]) if rows else None

    def _insert_event(self, x: Executor, row: tuple[object, ...]) -> int:
        cur = x.execute(
            "INSERT INTO events (stream, version, type, class_version, data, at, idempotency_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING position",
            row,
        )
        position = int(cur.fetchone()[0])
        if row[2] in WAKE:
            x.execute(f"NOTIFY {CHANNEL}")  # delivered when this transaction commits
        return position

    # --- fleet services ---------------------------------------------------------------------

    def listen(self, wake: Callable[[], None], stop: threading.Event) -> threading.Thread:
        """Call ``wake`` whenever new work is committed anywhere (polling remains the fallback)."""

        def run() -> None:
            while not stop.is_set():
                try:
                    with psycopg.connect(self.url, autocommit=True, application_name=self.application_name) as conn:
                        conn.execute(f"LISTEN {CHANNEL}")
                        while not stop.is_set():
                            for _ in conn.notifies(timeout=1.0, stop_after=1):
                                wake()
                except psycopg.Error:
                    stop.wait(1.0)

        thread = threading.Thread(target=run, name="pg-listen", daemon=True)
        thread.start()
        return thread

    def try_lead(self) -> bool:
        """Hold (or take) the leader lock; False while another host holds it (or this one cannot tell)."""
        with self._lock:  # the renewal thread and the loop (confirming before a leader-only job) both ask
            return self._try_lead()

    def _try_lead(self) -> bool:
        try:
            if self._leader is None or self._leader.closed:
                self._leader = self._connect(row_factory=tuple_row)
                got = self._leader.execute("SELECT pg_try_advisory_lock(%s, %s)", (self._ns, LEADER_LOCK)).fetchone()
                if not (got and got[0]):
                    self._leader.close()
                    self._leader = None
                    return False
            self._leader.execute("SELECT 1")  # still connected: still the leader
            return True
        except psycopg.Error:
            if self._leader is not None:
                with contextlib.suppress(Exception):
                    self._leader.close()
            self._leader = None
            return False

    def leader_session(self) -> Leader | None:
        """The session holding the leader lock, if any: its backend pid and the daemon instance it names."""
        rows = self._read(
            "SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = ?::oid AND l.objid = ?::oid"
            " AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (self._ns, LEADER_LOCK),
        )
        return Leader(pid=int(rows[0][0]), instance=instance_of(str(rows[0][1] or ""))) if rows else None

    def end_session(self, pid: int) -> bool:
        """Terminate a stale leader's session, so its lock is released (same role, or pg_signal_backend)."""
        try:
            return bool(self._read("SELECT pg_terminate_backend(?)", (pid,))[0][0])
        except (StoreError, psycopg.Error):
            return False

    def db_now(self) -> str:
        row = self._read("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')")
        return str(row[0][0])

    # --- what SQLite has as a file -----------------------------------------------------------

    def high_water(self) -> int:
        row = self._read("SELECT last_value, is_called FROM events_position_seq")[0]
        return int(row[0]) if row[1] else 0

    def size_bytes(self) -> int:
        row = self._read(
            "SELECT COALESCE(SUM(pg_total_relation_size(c)), 0) FROM unnest("
            "ARRAY['events', 'jobs', 'alerts', 'notifications', 'leases']::regclass[]) AS c"
        )
        return int(row[0][0])

    def checkpoint(self) -> None:
        return None

    def quick_check(self) -> str:
        """PostgreSQL guards its own pages (WAL, checksums); what can go wrong for us is a standby."""
        if self._read("SELECT pg_is_in_recovery()")[0][0]:
            return "the server is a read-only standby (in recovery); point store at the primary"
        return "ok"

    def integrity_check(self) -> str:
        """The quick check, and no projected job without the events it came from."""
        quick = self.quick_check()
        if quick != "ok":
            return quick
        stray = self._read(
            "SELECT COUNT(*) FROM jobs j WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.stream = 'job-' || j.id)"
        )[0][0]
        return "ok" if not stray else f"{stray} job rows without events"

    def close(self) -> None:
        with self._lock:
            for conn in (self._conn, self._leader):
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()


__all__ = ["PostgresEventStore", "Recorded"]
