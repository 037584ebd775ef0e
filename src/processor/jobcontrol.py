"""Running jobs on workers: dispatch, worker messages, heartbeats, timeouts, cancel.

Each running job has a :class:`Run` holding what only the live daemon knows
(monotonic deadlines, unflushed segments, the job log).  A job is ended by
the death of its worker only once the whole process tree is gone, so a retry
never races a survivor of the previous attempt.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from ground.times import iso
from processor import policy, protocol, sharing
from processor.clock import Clock
from processor.config import Settings
from processor.deadlines import Deadlines
from processor.joblog import RotatingLog
from processor.lifecycle import Lifecycle
from processor.outcomes import Outcomes
from processor.pool import WorkerPool
from processor.runs import Completion, Outcome, Run, StopReason
from processor.supervisor import Exit, WorkerProcess, WorkerState, kill_adopted
from schema import events as ev
from schema.errors import StaleAttempt, StoreError
from schema.jobs import Job, JobState

__all__ = ["JobControl", "Run", "StopReason"]

LOOK_AHEAD = 32  # waiting jobs read beyond the free workers, so the largest of a batch can go first


class JobControl(Deadlines):
    def __init__(
        self,
        lifecycle: Lifecycle,
        pool: WorkerPool,
        settings: Settings,
        clock: Clock,
        log: Any,
        host: str = "",
        instance: str = "",
        store_ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.host = host
        self.instance = instance
        self.lc = lifecycle
        self.store = lifecycle.store
        self.layout = lifecycle.layout
        self.pool = pool
        self.settings = settings
        self.clock = clock
        self.log = log
        self.runs: dict[str, Run] = {}
        self.outcomes = Outcomes(lifecycle, settings, clock, log, instance)
        self.load_errors: dict[tuple[str, str], str] = {}
        self.dispatch_dirty = True
        self.next_retry_mono: float | None = None
        self._waiting = 0  # dispatchable jobs the last dispatch could not start (no lane is lent past them)
        self._log_write_errors = 0
        self._store_ready = store_ready  # False while the daemon backs off a refusing store

    @property
    def log_write_errors(self) -> int:
        return self._log_write_errors + self.outcomes.log_write_errors

    def wake(self) -> None:
        """Something may be dispatchable now (new work, a free worker, a requeue)."""
        self.dispatch_dirty = True

    def owned(self) -> set[str]:
        """Jobs this daemon holds: running on its workers, or ended with an outcome not yet recorded."""
        return set(self.runs) | set(self.outcomes.pending)

    def busy(self) -> bool:
        return bool(self.runs or self.outcomes.pending)

    # --- dispatch ---------------------------------------------------------------

    def dispatch(self) -> None:
        """Start what the free workers can take, largest first within a batch (processor.sharing)."""
        free = self.pool.size - len(self.runs)
        if free <= 0:
            return
        now_iso = iso(self.clock.wall())
        candidates = self.store.dispatchable(now_iso, limit=free + self.pool.size + LOOK_AHEAD)
        self.dispatch_dirty = False
        started, waiting = 0, 0
        for job in sharing.dispatch_order(candidates):
            if job.id in self.runs or job.id in self.outcomes.pending:
                continue
            if started >= free:
                waiting += 1
            elif job.cancel_requested:
                self.lc.cancel(job)
            elif self._start_safely(job):
                started += 1
            elif job.id not in self.runs:
                waiting += 1  # its worker is still loading, or its start failed: not a free slot either
        self._waiting = waiting
        self._plan_next_retry()
        self.share_lanes()

    def share_lanes(self) -> None:
        """Worker slots no waiting job needs are lent to running jobs as lanes; taken back when one waits."""
        if self.pool.lanes <= 1:
            return
        spare = self.pool.size - len(self.runs) - self._waiting
        live = {job_id: run for job_id, run in self.runs.items() if run.stop is None}
        left = {j: r.duration_s - r.position_s if r.probed and r.duration_s else None for j, r in live.items()}
        for job_id, n in sharing.share_lanes(spare, left, self.pool.lanes).items():
            run, worker = live[job_id], self.pool.workers.get(live[job_id].wid)
            if n != run.lanes and worker is not None and worker.send(protocol.lanes(job_id, n)):
                run.log.line(f"{iso(self.clock.wall())} lanes {run.lanes} -> {n}")
                run.lanes = n

    def _start_safely(self, job: Job) -> bool:
        """A bulkhead: what one job's start raises ends that job (internal_error), not the daemon."""
        try:
            return self._start(job)
        except (StoreError, OSError):
            raise  # the store or the disk: the daemon backs off, the job waits
        except Exception as e:  # one job's surprise must not stop dispatch
            self.log.exception("job.internal_error", job_id=job.id, step="start")
            run = self.runs.get(job.id)
            if run is not None:
                self.stop(run, StopReason("fail", "internal_error", f"{type(e).__name__}: {e}"[:500]))
            else:
                fresh = self.store.job(job.id)
                if fresh is not None and not fresh.state.terminal:
                    self.lc.fail_now(fresh, "internal_error", f"{type(e).__name__}: {e}"[:500])
            return False

    def _plan_next_retry(self) -> None:
        earliest = self.store.earliest_retry()
        if earliest is None:
            self.next_retry_mono = None
            return
        wait = (datetime.fromisoformat(earliest) - self.clock.wall()).total_seconds()
        self.next_retry_mono = self.clock.mono() + max(0.0, wait)

    def _start(self, job: Job) -> bool:
        key = (job.options["engine"], job.options["model"])
        if self.pool.load_failures.get(key, 0) >= 3:
            self.lc.fail_now(job, "engine_unavailable", self.load_errors.get(key, "the engine failed to load"))
            return False
        worker = self.pool.ensure(key, self.clock.mono())
        if worker is None:
            return False
        if not self.lc.reconcile_input(job):
            self.lc.fail_now(job, "input_missing", "the input is gone from work/, inbox/ and failed/")
            return False
        if job.state is JobState.retry_wait and self.lc.input_changed(job) is not None:
            return False  # still being written: looked at again after settle_s
        fresh = self.store.job(job.id)  # the checks above may have appended
        if fresh is None or fresh.state not in (JobState.queued, JobState.retry_wait):
            return False
        job = fresh
        resume = job.checkpoint_s
        prior = self.lc.segments_of(job.id) if resume > 0 else []
        started = ev.JobStarted(
            attempt=job.attempts + 1,
            worker=worker.wid,
            pid=worker.pid,
            create_time=worker.create_time,
            engine=key[0],
            model=key[1],
            resume_from=resume,
            host=self.host,
            instance=self.instance,
        )
        # A refusal here whose commit went through anyway leaves the job running on an idle
        # worker in the store's eyes: Outcomes.reconcile finds it within a second.
        claimed = self.store.claim(job, started, key=f"{job.id}:a{job.total_attempts + 1}:started")
        if claimed is None:  # another daemon of the fleet started it first
            self.dispatch_dirty = True
            return False
        job = claimed
        now = self.clock.mono()
        run = Run(
            job.id,
            worker.wid,
            job.attempts,
            self._job_log(job.id),
            started=now,
            last_progress=now,
            stage=f"a{job.total_attempts}",
        )
        self.runs[job.id] = run
        worker.take(job.id)
        run.log.line(
            f"{iso(self.clock.wall())} attempt {job.attempts} on {worker.wid} pid {worker.pid} "
            f"({key[0]} {key[1]}) resume_from={resume}"
        )
        order: protocol.JobMsg = {
            "type": "job",
            "job": job.id,
            "attempt": job.attempts,
            "total_attempt": job.total_attempts,
            "input": str(self.lc.input_path(job)),
            "stage": str(self.layout.staging(job.id) / run.stage),  # one per attempt: no cross-talk
            "options": job.options,
            "resume_from": resume,
            "prior_segments": prior,
            "source": job.source,
            "lanes": 1,  # more once the probe says how long it is and a slot is free (share_lanes)
        }
        sent = worker.send(order)
        if not sent:
            run.log.line("worker pipe closed before the job reached it")
        self._best_effort(run, worker, self._heartbeat, run, worker, now)
        self.log.info(
            "job.started", job_id=job.id, attempt=job.attempts, worker=worker.wid, pid=worker.pid, resume_from=resume
        )
        return True

    def _job_log(self, job_id: str) -> RotatingLog:
        return RotatingLog(self.layout.job_log(job_id), self.settings.log_max_bytes, self.settings.log_backups)

    # --- worker messages --------------------------------------------------------

    def on_message(self, worker: WorkerProcess, msg: protocol.FromWorker) -> None:
        if msg["type"] == "ready":
            self._on_ready(worker, msg)
        elif msg["type"] == "fatal":
            self.pool.load_failures[worker.key] = self.pool.load_failures.get(worker.key, 0) + 1
            self.load_errors[worker.key] = msg["message"]
            self.log.error("worker.load_failed", worker=worker.wid, message=msg["message"])
            self.dispatch_dirty = True
        elif msg["type"] == "idle":
            pass  # already released when its result, error or skip was handled
        else:
            run = self.runs.get(msg["job"])
            if run is None or run.wid != worker.wid or run.stop is not None:
                return
            with structlog.contextvars.bound_contextvars(job_id=run.job_id):
                try:
                    self._on_job_message(worker, run, msg)
                except (StoreError, OSError):
                    raise
                except Exception as e:  # noqa: BLE001 - a bulkhead: this job ends, the daemon goes on
                    self._internal_error(run, e, f"message {msg['type']}")
            if run.job_id not in self.runs:  # it ended: hand the worker its next job, then record this one
                self._after_outcome()

    def _internal_error(self, run: Run, e: Exception, step: str) -> None:
        self.log.exception("job.internal_error", job_id=run.job_id, step=step)
        self.stop(run, StopReason("fail", "internal_error", f"{type(e).__name__}: {e}"[:500]))

    def _after_outcome(self) -> None:
        """Outside any attempt's fence: the next job's writes are none of the finished attempt's business."""
        if self._store_ready():
            self.dispatch()
            self.outcomes.record_due()

    def _on_ready(self, worker: WorkerProcess, msg: protocol.ReadyMsg) -> None:
        worker.ready()
        self.pool.load_failures.pop(worker.key, None)
        self.log.info(
            "worker.ready",
            worker=worker.wid,
            pid=worker.pid,
            engine=msg.get("engine"),
            model=msg.get("model"),
            load_s=msg.get("load_s"),
            info=msg.get("info"),
        )
        blas = str((msg.get("info") or {}).get("blas", ""))
        if blas.startswith("reference"):
            self.log.warning(
                "engine.slow_blas",
                worker=worker.wid,
                message="mlx is using its reference BLAS (about 7x slower on a CPU); "
                "install an optimised CBLAS (Debian: libopenblas0-pthread) or set SPOOL_CBLAS",
            )
        self.dispatch_dirty = True

    def _on_job_message(self, worker: WorkerProcess, run: Run, msg: protocol.JobReport) -> None:
        """Memory first; store writes are either kept until recorded or, for progress, merely skipped."""
        now = self.clock.mono()
        if msg["type"] == "probe":
            run.probe, run.probed, run.last_progress = msg, True, now
            self._decide_probe(worker, run)
        elif msg["type"] == "progress":
            run.last_progress, run.position_s = now, float(msg["position_s"])
            run.duration_s = float(msg["duration_s"] or run.duration_s)
            if now - run.last_progress_event >= self.settings.progress_s:
                run.last_progress_event = now
                progressed = ev.JobProgressed(position_s=run.position_s, duration_s=run.duration_s)
                self._best_effort(run, worker, self._append_fenced, run, [progressed])
        elif msg["type"] == "segments":
            run.last_progress = now
            run.pending.extend(msg["segments"])
            run.pending_upto = max(run.pending_upto, float(msg["upto_s"]))
            run.position_s = max(run.position_s, run.pending_upto)
            if now - run.last_flush >= self.settings.progress_s:
                self._best_effort(run, worker, self.outcomes.flush, run)
        else:  # result or error
            self._conclude(worker, run, Completion(run.job_id, run.wid, Outcome(msg["type"]), run=run, msg=msg))

    def _decide_probe(self, worker: WorkerProcess, run: Run) -> None:
        """Decide before recording: ``go`` moves no file, so the worker need not wait for our fsync.

        The decision reads the store (is this content transcribed already?); while the store
        cannot answer, the probe is kept and decided on a later tick, the worker waiting for it.
        """
        msg = run.probe
        assert msg is not None
        now = self.clock.mono()
        try:
            job = self._job(run)
            original = None
            if not job.cancel_requested and self.settings.duplicates == "reuse":
                original = self.store.find_duplicate(str(msg["sha256"]), job.options_key, exclude=job.id)
        except StoreError:
            run.last_progress = now  # the worker waits for us, not the other way round
            return
        run.probe = None
        run.duration_s = float(msg["duration_s"])
        run.journal.append(ev.JobProbed(sha256=str(msg["sha256"]), duration_s=run.duration_s))
        if job.cancel_requested or original is not None:
            worker.send(protocol.skip())
            kind = Outcome.duplicate if original is not None else Outcome.cancel
            self._conclude(worker, run, Completion(run.job_id, run.wid, kind, run=run, original=original))
            return
        run.hard_deadline = now + policy.hard_timeout(
            run.duration_s, self.settings.timeout_base_s, self.settings.timeout_factor
        )
        worker.send(protocol.go())
        self.share_lanes()  # its length is known now
        self._best_effort(run, worker, self.outcomes.flush, run)

    def _conclude(self, worker: WorkerProcess | None, run: Run, completion: Completion) -> None:
        """The attempt ended in memory: its outcome is kept until recorded; its worker is free at once."""
        self.runs.pop(run.job_id, None)
        self.outcomes.add(completion)
        if worker is not None:
            self._release(worker)
        self.dispatch_dirty = True

    def _best_effort(self, run: Run, worker: WorkerProcess | None, write: Callable[..., Any], *args: Any) -> None:
        """A write that may wait: refused now, it is made again later (or, for progress, superseded)."""
        try:
            write(*args)
        except StaleAttempt as e:
            self._abandon(worker, run, e)
        except (StoreError, OSError) as e:
            self.log.debug("store.write_deferred", job_id=run.job_id, error=str(e)[:200])

    def _append_fenced(self, run: Run, events: list[ev.Event]) -> None:
        with self.lc.attempt(run.wid):  # every append about a run is fenced by its attempt
            self.lc.append(run.job_id, events)

    def _abandon(self, worker: WorkerProcess | None, run: Run, e: StaleAttempt) -> None:
        """The job moved on (another host took it while this one was cut off): drop this attempt."""
        self.log.warning("job.stale", job_id=run.job_id, worker=run.wid, message=str(e))
        run.log.line(f"{iso(self.clock.wall())} abandoned: {e}")
        self._finish(run)
        if worker is not None and worker.state is WorkerState.busy and worker.job == run.job_id:
            worker.begin_stop(self.clock.mono(), self.settings.grace_s)

    def _job(self, run: Run) -> Job:
        job = self.store.job(run.job_id)
        assert job is not None
        return job

    def _finish(self, run: Run) -> None:
        self.runs.pop(run.job_id, None)
        run.log.close()
        self._log_write_errors += run.log.errors
        self.dispatch_dirty = True

    def _release(self, worker: WorkerProcess) -> None:
        """The worker is done with its job (it says ``idle`` right after): free it, or recycle it."""
        if worker.state is WorkerState.stopping:
            return
        leftovers = worker.kill_descendants() + kill_adopted(self.pool.pids())
        if leftovers:
            self.log.warning("job.leftovers_killed", job_id=worker.job, worker=worker.wid, processes=leftovers)
        worker.release()
        _, rss = worker.sample(self.clock.mono())
        if worker.jobs_done >= self.settings.max_jobs_per_worker or rss > self.settings.worker_rss_limit_mb * 2**20:
            self.log.info("worker.recycle", worker=worker.wid, jobs=worker.jobs_done, rss_mb=rss // 2**20)
            worker.retire(self.clock.mono(), self.settings.grace_s + 10)
        self.dispatch_dirty = True

    # --- time-driven ------------------------------------------------------------

    def hold(self, job_id: str, wait_s: float, worker: str | None = None) -> None:
        self.outcomes.hold(job_id, wait_s, worker)

    def next_hold_in(self, now: float) -> float | None:
        return self.outcomes.next_due_in(now)

    def tick(self) -> None:
        """One round of the time-driven work; a StoreError leaves everything kept for the next round."""
        now = self.clock.mono()
        self._check_starting(now)
        for run in list(self.runs.values()):
            worker = self.pool.workers.get(run.wid)
            if worker is None or run.stop is not None:
                continue
            try:
                self._tick_run(run, worker, now)
            except (StoreError, OSError):
                raise
            except Exception as e:  # noqa: BLE001 - a bulkhead: this job ends, the others go on
                self._internal_error(run, e, "tick")
        self.outcomes.record_due()
        if self.outcomes.reconcile(set(self.runs), now):
            self.outcomes.record_due()

    def _tick_run(self, run: Run, worker: WorkerProcess, now: float) -> None:
        if run.probe is not None:
            self._decide_probe(worker, run)
            if run.job_id not in self.runs:
                return
        if run.pending and now - run.last_flush >= self.settings.progress_s:
            self._best_effort(run, worker, self.outcomes.flush, run)
        if now - run.last_heartbeat >= self.settings.heartbeat_s:
            self._best_effort(run, worker, self._heartbeat, run, worker, now)
        if run.job_id in self.runs:
            self._check_deadlines(run, worker, now)

    def _heartbeat(self, run: Run, worker: WorkerProcess, now: float) -> None:
        run.last_heartbeat = now
        cpu, rss = worker.sample(now)
        beat = ev.JobHeartbeat(cpu_percent=cpu, rss_bytes=rss, position_s=round(run.position_s, 3))
        self._append_fenced(run, [beat])

    def stop(self, run: Run, reason: StopReason) -> None:
        """Kill a running job's worker; the job's event follows once its whole tree is gone."""
        if run.stop is not None:
            return
        run.stop = reason
        worker = self.pool.workers.get(run.wid)
        run.log.line(f"{iso(self.clock.wall())} stopping worker: {reason.reason}: {reason.message}")
        self.log.warning("job.stopping", job_id=run.job_id, reason=reason.reason, worker=run.wid)
        if worker is not None:
            worker.begin_stop(self.clock.mono(), self.settings.grace_s)

    def cancel(self, job: Job) -> None:
        """Honoured in every state short of terminal: a running worker is stopped, a kept outcome dropped."""
        run = self.runs.get(job.id)
        if run is not None:
            self.stop(run, StopReason("cancel", "cancelled", "cancelled on request"))
        elif self.outcomes.cancel(job.id):
            self.outcomes.record_due()
        elif job.state in (JobState.queued, JobState.retry_wait):
            self.lc.cancel(job)

    # --- worker deaths ----------------------------------------------------------

    def on_worker_gone(self, worker: WorkerProcess, exit: Exit) -> None:
        """The worker and its whole tree are gone: its job's outcome is kept until recorded."""
        run = self.runs.get(worker.job or "")
        self.dispatch_dirty = True
        if worker.retiring and run is None:
            return
        if worker.state is WorkerState.dead and run is None and worker.job is None and exit.code not in (0, None):
            self.log.warning("worker.died", worker=worker.wid, exit=exit.describe())
        if run is None:
            return
        detail = f"{exit.describe()}" + (f"; {exit.swept} leftover process(es) killed" if exit.swept else "")
        run.log.line(f"{iso(self.clock.wall())} worker {worker.wid} {detail}")
        self._conclude(None, run, Completion(run.job_id, run.wid, Outcome.exit, run=run, exit=exit, detail=detail))
        if self._store_ready():
            self.outcomes.record_due()

    def interrupt_all(self) -> None:
        for run in list(self.runs.values()):
            with contextlib.suppress(StoreError):  # kept in memory: the worker's exit records it with the rest
                self.outcomes.flush(run)
            with contextlib.suppress(Exception):
                self.stop(
                    run, StopReason("interrupt", "interrupted", "the daemon was stopped; the job resumes at next start")
                )
