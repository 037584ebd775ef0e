"""The store's errors (the shared base and the errors that are nobody's live in ``ground.errors``).

Every package raises subclasses of :class:`SpoolError`; the CLI prints
``str(error)`` as one line and exits non-zero, so each message must tell a
human what happened and what to do.  Subclasses take the identifying data and
format the message themselves, so call sites cannot word the same failure two
different ways.
"""

from __future__ import annotations

from ground.errors import SpoolError


class StoreError(SpoolError):
    """The event store failed in a way the caller cannot fix by retrying now."""

    exit_code = 3  # the database refuses (README, "Command line")


class StoreUnreachable(StoreError):
    """The database server cannot be reached (down, wrong address, refused login)."""

    exit_code = 3


class StoreRefused(StoreError):
    """The database refused this role what it asked (missing rights, a schema that is not ours)."""

    exit_code = 3


class ConcurrencyError(StoreError):
    """An append expected a stream version that another writer already moved past."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        self.stream, self.expected, self.actual = stream, expected, actual
        super().__init__(
            f"stream {stream} is at version {actual}, not {expected}: "
            "someone else appended first; reload and decide again"
        )


class StoreBusy(StoreError):
    """The database stayed locked by another process beyond the retry deadline."""

    def __init__(self, path: str, waited_s: float) -> None:
        super().__init__(
            f"{path} stayed locked for {waited_s:.0f} s; another process holds a "
            "write lock (an open sqlite3 shell?); close it and try again"
        )


class StoreFull(StoreError):
    """The disk holding the database is full; nothing was written."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: disk full; the event was not recorded; free space and retry")


class StoreCannotOpen(StoreError):
    """SQLite cannot open or create its file: the operating system refuses (modes, a missing folder, no inodes)."""

    exit_code = 4

    def __init__(self, path: str) -> None:
        super().__init__(
            f"{path}: the database cannot be opened or created (check the folder's owner and mode, "
            "that it exists, and that the disk has space and inodes left)"
        )


class DatabaseDamaged(StoreError):
    """The database file is unreadable; we never replace it with an empty one."""

    exit_code = 3

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"{path} is damaged ({detail}); spoolscribe will not start on it. "
            "Restore it from state/backups/ (see schema/migrations/README.md)"
        )


class SchemaTooNew(StoreError):
    """The database was written by a newer spoolscribe than this one."""

    exit_code = 3

    def __init__(self, path: str, found: int, known: int) -> None:
        super().__init__(
            f"{path} has schema version {found} but this spoolscribe knows up to "
            f"{known}; upgrade spoolscribe instead of downgrading the database"
        )


class IllegalTransition(SpoolError):
    """An event does not apply to the job's current state."""

    def __init__(self, job_id: str, state: str, event_type: str, allowed: list[str]) -> None:
        self.job_id, self.state, self.event_type = job_id, state, event_type
        super().__init__(
            f"job {job_id}: {event_type} is not allowed in state {state!r} "
            f"(allowed there: {', '.join(sorted(allowed)) or 'nothing'})"
        )


class UnknownEvent(StoreError):
    """A stored row names an event type this code does not know."""

    def __init__(self, type_: str, class_version: int) -> None:
        super().__init__(
            f"stored event {type_!r} v{class_version} is unknown to this spoolscribe; "
            "the database was written by a newer version"
        )


class JobNotFound(SpoolError):
    """A job id or prefix given by a user matches no job."""

    def __init__(self, ref: str, candidates: int = 0) -> None:
        if candidates > 1:
            msg = f"job {ref!r} is ambiguous: {candidates} jobs start with it; type more characters"
        else:
            msg = f"no job {ref!r}; `spool jobs` lists them"
        super().__init__(msg)


class StaleAttempt(StoreError):
    """An attempt tried to record something after its job moved on (another worker or host took it)."""

    def __init__(self, job_id: str, worker: str, holder: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id}: attempt on {worker} is stale (the job is now {holder}); its result is dropped")


class AlreadySubmitted(StoreError):
    """The same dropped file is already an unfinished job (another host noticed it first)."""
