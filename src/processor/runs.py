"""What only the live daemon knows about an attempt: its run while it runs, its completion after.

A :class:`Run` lives while a worker holds the job.  When the worker reports
(a result, an error, a skip) or dies, the run becomes a :class:`Completion`:
the outcome kept in memory until the store has recorded it, so a write the
store refuses at that very instant is made again later instead of being lost.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from processor.joblog import RotatingLog
from processor.protocol import ErrorMsg, ProbeMsg, ResultMsg
from processor.supervisor import Exit
from schema import events as ev
from schema.jobs import Job


@dataclass
class StopReason:
    kind: str  # fail | cancel | interrupt
    reason: str
    message: str


@dataclass
class Run:
    job_id: str
    wid: str
    attempt: int
    log: RotatingLog
    started: float
    last_progress: float
    last_heartbeat: float = 0.0
    last_progress_event: float = 0.0
    last_flush: float = 0.0
    last_rss_check: float = 0.0
    probed: bool = False
    hard_deadline: float | None = None
    position_s: float = 0.0
    duration_s: float = 0.0
    pending: list[dict[str, Any]] = field(default_factory=list)  # segments not yet recorded
    pending_upto: float = 0.0
    journal: list[ev.Event] = field(default_factory=list)  # other facts of this attempt not yet recorded
    inflight: tuple[str, list[ev.Event], int, int] | None = None  # (key, batch, journal n, segments n) refused once
    flushes: int = 0
    probe: ProbeMsg | None = None  # the worker's probe, while the store cannot be asked about it
    stop: StopReason | None = None
    stage: str = ""  # this attempt's staging sub-directory
    lanes: int = 1  # windows its worker may decode at once (processor.sharing)


class Outcome(enum.StrEnum):
    """How an attempt ended, as far as the daemon has seen it."""

    result = "result"
    """The worker staged a transcript."""
    error = "error"
    """The worker reported a failure of this input or of its engine."""
    exit = "exit"
    """The worker (and its whole tree) is gone: killed on purpose, or it died."""
    duplicate = "duplicate"
    """The probe found the same content transcribed before: its transcript is reused."""
    cancel = "cancel"
    """The job was cancelled before the engine ran."""
    publish = "publish"
    """The transcript is recorded; moving it into outbox/ remains (held until the input is quiet)."""
    lost = "lost"
    """The store shows the job running here, but no worker of this daemon runs it any more."""


@dataclass
class Completion:
    """An outcome the store has not (completely) recorded yet; ``wid`` fences every write of it."""

    job_id: str
    wid: str
    kind: Outcome
    run: Run | None = None
    msg: ResultMsg | ErrorMsg | None = None  # the worker's report, for a result or an error
    exit: Exit | None = None
    detail: str = ""
    original: Job | None = None
    due: float = 0.0  # monotonic time before which nothing is tried (a held publication)
    tries: int = 0  # consecutive I/O failures of this completion alone
    logged: bool = False
