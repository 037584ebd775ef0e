"""Recording how attempts ended, whatever the store does at that instant.

A worker's result, error or death is a fact only the daemon's memory holds
until the store has recorded it.  Every such outcome is kept here as a
:class:`~processor.runs.Completion` until it is recorded completely (or the
store shows that the job moved on), and each try is

* fenced by the attempt: nothing is written once the job left this worker;
* state-driven and keyed: a try whose commit went through but whose
  acknowledgement was lost finds the job already moved on (or its key
  already stored) and only finishes the file moves that were left.

A write the store refuses leaves the completion where it is, in order; the
daemon backs off and tries again.  An I/O error of one completion alone
(not the disk filling) ends that job with ``io_error`` after a few tries;
the others go on.  :meth:`Outcomes.reconcile` checks the store's view
against memory, so a job recorded as running here that no run holds any
more is never left "running".
"""

from __future__ import annotations

import contextlib
import errno
from typing import Any

import structlog

from ground.times import iso
from processor.clock import Clock
from processor.config import Settings
from processor.lifecycle import Lifecycle
from processor.runs import Completion, Outcome, Run
from schema import events as ev
from schema.errors import StaleAttempt, StoreError
from schema.jobs import Job, JobState
from schema.reasons import Reason

RECONCILE_S = 1.0
IO_TRIES = 3
# The spool's condition, not this job's: wait for it to pass (the daemon's watch reports it meanwhile).
_WAIT_FOR = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class Outcomes:
    def __init__(self, lifecycle: Lifecycle, settings: Settings, clock: Clock, log: Any, instance: str) -> None:
        self.lc = lifecycle
        self.store = lifecycle.store
        self.settings = settings
        self.clock = clock
        self.log = log
        self.instance = instance
        self.pending: dict[str, Completion] = {}  # job id -> its unrecorded outcome, oldest first
        self.log_write_errors = 0
        self._next_check = 0.0

    # --- what others ask ----------------------------------------------------------------

    def add(self, c: Completion) -> None:
        self.pending[c.job_id] = c

    def hold(self, job_id: str, wait_s: float, worker: str | None) -> None:
        """A recorded transcript waits until its input has been quiet (or the store lets it be moved)."""
        self.pending[job_id] = Completion(job_id, worker or "", Outcome.publish, due=self.clock.mono() + wait_s)
        self.log.info("job.held", job_id=job_id, wait_s=round(wait_s, 1))

    def cancel(self, job_id: str) -> bool:
        """A cancel for a job whose outcome is kept here (held for publication, or not yet recorded)."""
        c = self.pending.get(job_id)
        if c is None:
            return False
        c.kind, c.due = Outcome.cancel, 0.0
        return True

    def next_due_in(self, now: float) -> float | None:
        if not self.pending:
            return None
        return max(0.0, min(c.due for c in self.pending.values()) - now)

    # --- recording ----------------------------------------------------------------------

    def flush(self, run: Run) -> None:
        """Record the attempt's journal and segments; they leave memory only once recorded.

        A batch the store refused is offered again exactly as it was, under the same
        key, so a commit whose acknowledgement was lost is found, not recorded twice.
        """
        run.last_flush = self.clock.mono()
        while run.inflight is not None or run.journal or run.pending:
            if run.inflight is None:
                batch = list(run.journal)
                if run.pending:
                    batch.append(ev.JobSegments(segments=list(run.pending), upto_s=run.pending_upto))
                key = f"{run.job_id}:{run.stage}:f{run.flushes}"
                run.inflight = (key, batch, len(run.journal), len(run.pending))
            key, batch, n_journal, n_segments = run.inflight
            with self.lc.attempt(run.wid):
                self.lc.append(run.job_id, batch, key=key)
            run.journal = run.journal[n_journal:]
            run.pending = run.pending[n_segments:]  # what arrived meanwhile goes in the next batch
            run.flushes += 1
            run.inflight = None

    def record_due(self) -> None:
        """Try every completion whose time has come, oldest first.

        A refused write (StoreError) propagates to the daemon, which backs off; the
        completion that met it and every later one stay, in order.
        """
        now = self.clock.mono()
        for c in list(self.pending.values()):
            if c.due <= now and self.pending.get(c.job_id) is c:
                self._complete(c, now)

    def _complete(self, c: Completion, now: float) -> None:
        with structlog.contextvars.bound_contextvars(job_id=c.job_id), self.lc.attempt(c.wid):
            try:
                if c.run is not None:
                    self.flush(c.run)  # the attempt's last segments and facts, before its outcome
                job = self.store.job(c.job_id)
                done = job is None or self._record(c, job, now)
            except StaleAttempt as e:
                self._moved_on(c, e)
                done = True
            except OSError as e:
                done = self._io_failed(c, e, now)
            except StoreError:
                raise  # refused: kept, in order; the daemon backs off
            except Exception as e:  # noqa: BLE001 - a bulkhead: one outcome's bug must not stop the daemon
                self._internal_error(c, e)
                done = True
        if done:
            self._done(c)

    def _internal_error(self, c: Completion, e: Exception) -> None:
        """A bug met while recording one outcome: that job ends with the reason; the loop goes on."""
        self.log.exception("job.internal_error", job_id=c.job_id, outcome=c.kind.value)
        job = self.store.job(c.job_id)
        if job is not None and not job.state.terminal:
            with contextlib.suppress(StaleAttempt), self.lc.attempt(None):
                self.lc.fail(job, Reason.internal_error, f"{type(e).__name__}: {e}"[:500], retryable=False)

    def _record(self, c: Completion, job: Job, now: float) -> bool:
        """Record ``c`` from the job as the store has it now; False when it waits (held)."""
        if c.kind is Outcome.cancel and job.state in (JobState.running, JobState.publishing) and job.worker == c.wid:
            self.lc.cancel(job)  # honoured until the very publication: a held transcript is dropped
            return True
        if job.state is JobState.publishing and job.worker == c.wid:
            return self._publish(c, job, now)  # the outcome is recorded; its files are not all moved
        if job.state is not JobState.running or job.worker != c.wid:
            raise StaleAttempt(job.id, c.wid, f"{job.state.value} on {job.worker}")
        if c.kind is Outcome.result:
            if self.lc.input_changed(job) is not None:
                return True
            msg = c.msg
            assert msg is not None and msg["type"] == "result"  # a result outcome carries its report
            stage = c.run.stage if c.run is not None else ""
            job = self.lc.transcribed(
                job,
                [f"{stage}/{name}" for name in msg["outputs"]],
                msg["language"],
                msg["duration_s"],
                msg["elapsed_s"],
                publish=False,
            )
            return self._publish(c, job, now)
        if c.kind is Outcome.error:
            self._error(c, job)
        elif c.kind is Outcome.exit:
            self._exited(c, job)
        elif c.kind is Outcome.duplicate and c.original is not None:
            self.lc.duplicate(job, c.original)
        else:  # lost: memory holds nothing of an attempt the store shows running here
            message = "the daemon lost track of this attempt (a write was refused as it ended); it runs again"
            self.lc.fail(job, Reason.unrecorded, message, retryable=True)
        return True

    def _publish(self, c: Completion, job: Job, now: float) -> bool:
        if self.lc.input_changed(job) is not None:
            return True  # written to since: the job starts again from the final bytes
        wait = self.lc.quiet_wait(job)
        if wait > 0:
            if c.kind is not Outcome.publish:
                self.log.info("job.held", job_id=job.id, wait_s=round(wait, 1))
            self._close_run(c)
            c.kind, c.due = Outcome.publish, now + wait
            return False
        self.lc.publish(job)
        return True

    def _error(self, c: Completion, job: Job) -> None:
        msg = c.msg
        assert msg is not None and msg["type"] == "error"  # an error outcome carries its report
        reason, message = msg["reason"], msg["message"]
        if c.run is not None and not c.logged:
            c.run.log.line(f"{iso(self.clock.wall())} error {reason}: {message}")
            c.logged = True
        if reason == "input_changed":
            self.lc.input_changed(job, force=True)
        elif self.lc.unsettled_retry(job, reason, message) is None:
            self.lc.fail(job, reason, message, retryable=msg["retryable"])

    def _exited(self, c: Completion, job: Job) -> None:
        stop = c.run.stop if c.run is not None else None
        exit = c.exit
        code, sig = (exit.code, exit.signal) if exit is not None else (None, None)
        if stop is None:
            self.lc.fail(job, "worker_died", f"the worker {c.detail}", retryable=True, exit_code=code, signal=sig)
        elif stop.kind == "cancel":
            self.lc.cancel(job)
        elif stop.kind == "interrupt":
            self.lc.fail(job, "interrupted", stop.message, retryable=True, exit_code=code, signal=sig)
        else:  # a bug of ours is not the job's to retry; a timeout or a hang may pass
            retryable = stop.reason != Reason.internal_error
            self.lc.fail(job, stop.reason, stop.message, retryable=retryable, exit_code=code, signal=sig)

    def _moved_on(self, c: Completion, e: StaleAttempt) -> None:
        """The store no longer shows the job on this attempt: ours went through, or another took it."""
        job = self.store.job(c.job_id)
        if job is not None and self._ours(c, job):
            self.lc.finish_files(job)  # a lost acknowledgement may have stopped the moves it announced
            self.log.info("job.outcome_confirmed", job_id=c.job_id, state=job.state.value)
            return
        self.log.warning("job.stale", job_id=c.job_id, worker=c.wid, message=str(e))
        if c.run is not None:
            c.run.log.line(f"{iso(self.clock.wall())} abandoned: {e}")

    def _ours(self, c: Completion, job: Job) -> bool:
        """Whether what the store shows since this attempt started was written by this daemon alone."""
        if job.instance != self.instance or (c.run is not None and c.run.stage != f"a{job.total_attempts}"):
            return False
        since_start: list[ev.Event] = []
        for rec in self.store.read(ev.job_stream(job.id)):
            since_start = [] if isinstance(rec.event, ev.JobStarted) else [*since_start, rec.event]
        return not any(isinstance(e, (ev.JobOrphaned, ev.JobAdopted)) for e in since_start)

    def _io_failed(self, c: Completion, e: OSError, now: float) -> bool:
        """One completion's own I/O trouble: retried; unless the spool's condition, it ends its job after a few."""
        c.tries += 1
        wait = e.errno in _WAIT_FOR
        self.log.error("job.outcome_io_error", job_id=c.job_id, error=str(e)[:300], tries=c.tries, waiting=wait)
        if wait or c.tries < IO_TRIES:
            c.due = now + min(5.0, 0.5 * 2**c.tries)
            return False
        try:
            job = self.store.job(c.job_id)
            if job is not None and job.state in (JobState.running, JobState.publishing) and job.worker == c.wid:
                self.lc.fail(job, Reason.io_error, f"its outputs could not be moved: {e}"[:500], retryable=True)
        except StaleAttempt:
            pass
        except OSError as again:  # the failure is recorded; recovery finishes the moves at the next start
            self.log.error("job.outcome_io_error", job_id=c.job_id, error=str(again)[:300], gave_up=True)
        return True

    def _close_run(self, c: Completion) -> None:
        if c.run is not None:
            c.run.log.close()
            self.log_write_errors += c.run.log.errors
            c.run = None

    def _done(self, c: Completion) -> None:
        if self.pending.get(c.job_id) is c:
            del self.pending[c.job_id]
        self._close_run(c)

    # --- the store's view against memory -------------------------------------------------

    def reconcile(self, running_here: set[str], now: float, *, force: bool = False) -> list[str]:
        """Jobs the store shows running or publishing on this daemon that nothing here holds.

        A running one is failed (``unrecorded``, retried at once from its checkpoint); a
        publishing one is published.  Returns their ids.
        """
        if not force and now < self._next_check:
            return []
        self._next_check = now + RECONCILE_S
        found = []
        for job in self.store.jobs([JobState.running, JobState.publishing]):
            if job.instance != self.instance or job.id in running_here or job.id in self.pending:
                continue
            kind = Outcome.publish if job.state is JobState.publishing else Outcome.lost
            self.log.warning("job.reconciled", job_id=job.id, state=job.state.value, worker=job.worker)
            self.add(Completion(job.id, job.worker or "", kind))
            found.append(job.id)
        return found
