"""Running jobs on workers: dispatch, worker messages, heartbeats, timeouts, cancel.

Each running job has a :class:`Run` holding what only the live daemon knows
(monotonic deadlines, unflushed segments, the job log).  A job is ended by
the death of its worker only once the whole process tree is gone, so a retry
never races a survivor of the previous attempt.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import structlog

from processor import policy
from processor.clock import Clock
from processor.config import Settings
from processor.joblog import RotatingLog
from processor.lifecycle import Lifecycle
from processor.pool import WorkerPool
from processor.supervisor import Exit, WorkerProcess, WorkerState, kill_adopted
from schema import events as ev
from schema.errors import StaleAttempt
from schema.jobs import Job, JobState
from schema.sqlite_store import iso


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
    probed: bool = False
    hard_deadline: float | None = None
    position_s: float = 0.0
    duration_s: float = 0.0
    pending: list[dict[str, Any]] = field(default_factory=list)
    pending_upto: float = 0.0
    stop: StopReason | None = None
    stage: str = ""  # this attempt's staging sub-directory


class JobControl:
    def __init__(
        self,
        lifecycle: Lifecycle,
        pool: WorkerPool,
        settings: Settings,
        clock: Clock,
        log: Any,
        host: str = "",
        instance: str = "",
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
        self.load_errors: dict[tuple[str, str], str] = {}
        self.dispatch_dirty = True
        self.next_retry_mono: float | None = None
        self.log_write_errors = 0
        self.holding: dict[str, float] = {}  # job id -> monotonic time its input will have been quiet
        self.holding_worker: dict[str, str | None] = {}  # job id -> the attempt that produced its outputs

    # --- dispatch ---------------------------------------------------------------

    def dispatch(self) -> None:
        free = self.pool.size - len(self.runs)
        if free <= 0:
            return
        now_iso = iso(self.clock.wall())
        candidates = self.store.dispatchable(now_iso, limit=free + self.pool.size)
        self.dispatch_dirty = False
        started = 0
        for job in candidates:
            if started >= free:
                break
            if job.id in self.runs:
                continue
            if job.cancel_requested:
                self.lc.cancel(job)
                continue
            if self._start(job):
                started += 1
        self._plan_next_retry()

    def _plan_next_retry(self) -> None:
        earliest = self.store.earliest_retry()
        if earliest is None:
            self.next_retry_mono = None
            return
        from datetime import datetime

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
        worker.state, worker.job = WorkerState.busy, job.id
        run.log.line(
            f"{iso(self.clock.wall())} attempt {job.attempts} on {worker.wid} pid {worker.pid} "
            f"({key[0]} {key[1]}) resume_from={resume}"
        )
        sent = worker.send(
            {
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
            }
        )
        if not sent:
            run.log.line("worker pipe closed before the job reached it")
        try:
            self._heartbeat(run, worker, now)
        except StaleAttempt as e:  # taken away between the claim and here (this host was cut off)
            self._abandon(worker, run, e)
            return True
        self.log.info(
            "job.started", job_id=job.id, attempt=job.attempts, worker=worker.wid, pid=worker.pid, resume_from=resume
        )
        return True

    def _job_log(self, job_id: str) -> RotatingLog:
        return RotatingLog(self.layout.job_log(job_id), self.settings.log_max_bytes, self.settings.log_backups)

    # --- worker messages --------------------------------------------------------

    def on_message(self, worker: WorkerProcess, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "ready":
            worker.state = WorkerState.idle
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
        elif kind == "fatal":
            self.pool.load_failures[worker.key] = self.pool.load_failures.get(worker.key, 0) + 1
            self.load_errors[worker.key] = str(msg.get("message"))
            self.log.error("worker.load_failed", worker=worker.wid, message=msg.get("message"))
            self.dispatch_dirty = True
        elif kind == "idle":
            pass  # already released when its result, error or skip was handled
        else:
            run = self.runs.get(str(msg.get("job")))
            if run is None or run.wid != worker.wid or run.stop is not None:
                return
            with structlog.contextvars.bound_contextvars(job_id=run.job_id):
                try:
                    with self.lc.attempt(run.wid):
                        self._on_job_message(worker, run, kind, msg)
                except StaleAttempt as e:
                    self._abandon(worker, run, e)

    def _on_job_message(self, worker: WorkerProcess, run: Run, kind: str, msg: dict[str, Any]) -> None:
        now = self.clock.mono()
        if kind == "probe":
            self._on_probe(worker, run, msg, now)
        elif kind == "progress":
            run.last_progress, run.position_s = now, float(msg["position_s"])
            run.duration_s = float(msg.get("duration_s") or run.duration_s)
            if now - run.last_progress_event >= self.settings.progress_s:
                run.last_progress_event = now
                self.lc.append(run.job_id, [ev.JobProgressed(position_s=run.position_s, duration_s=run.duration_s)])
        elif kind == "segments":
            run.last_progress = now
            run.pending.extend(msg["segments"])
            run.pending_upto = max(run.pending_upto, float(msg["upto_s"]))
            run.position_s = max(run.position_s, run.pending_upto)
            if now - run.last_flush >= self.settings.progress_s:
                self._flush(run, now)
        elif kind in ("result", "error"):
            self._flush(run, now)
            self._finish(run)
            # The worker reads its next job as soon as it is free: hand it over before publishing.
            self._release(worker)
            self.dispatch()
            job = self._job(run)
            if kind == "result":
                if self.lc.input_changed(job) is None:
                    wait = self.lc.quiet_wait(job)
                    self.lc.transcribed(
                        job,
                        [f"{run.stage}/{name}" for name in msg["outputs"]],
                        str(msg.get("language") or ""),
                        float(msg["duration_s"]),
                        float(msg["elapsed_s"]),
                        publish=wait <= 0,
                    )
                    if wait > 0:
                        self.hold(job.id, wait, run.wid)
                return
            run.log.line(f"{iso(self.clock.wall())} error {msg.get('reason')}: {msg.get('message')}")
            if msg.get("reason") == "input_changed":
                self.lc.input_changed(job, force=True)
            elif self.lc.unsettled_retry(job, str(msg.get("reason")), str(msg.get("message"))) is None:
                self.lc.fail(job, str(msg.get("reason")), str(msg.get("message")), retryable=bool(msg.get("retryable")))

    def _on_probe(self, worker: WorkerProcess, run: Run, msg: dict[str, Any], now: float) -> None:
        """Decide before recording: ``go`` moves no file, so the worker need not wait for our fsync."""
        run.probed, run.last_progress = True, now
        run.duration_s = float(msg["duration_s"])
        probed = ev.JobProbed(sha256=str(msg["sha256"]), duration_s=run.duration_s)
        job = self._job(run)
        original = None
        if not job.cancel_requested and self.settings.duplicates == "reuse":
            original = self.store.find_duplicate(probed.sha256, job.options_key, exclude=job.id)
        if job.cancel_requested or original is not None:
            worker.send({"type": "skip"})
            self._finish(run)
            self._release(worker)
            job = self.lc.append(run.job_id, [probed])
            if original is not None:
                self.lc.duplicate(job, original)
            else:
                self.lc.cancel(job)
            return
        run.hard_deadline = now + policy.hard_timeout(
            run.duration_s, self.settings.timeout_base_s, self.settings.timeout_factor
        )
        worker.send({"type": "go"})
        self.lc.append(run.job_id, [probed])

    def _abandon(self, worker: WorkerProcess, run: Run, e: StaleAttempt) -> None:
        """The job moved on (another host took it while this one was cut off): drop this attempt."""
        self.log.warning("job.stale", job_id=run.job_id, worker=worker.wid, message=str(e))
        run.log.line(f"{iso(self.clock.wall())} abandoned: {e}")
        self._finish(run)
        if worker.state is WorkerState.busy and worker.job == run.job_id:
            worker.begin_stop(self.clock.mono(), self.settings.grace_s)

    def _job(self, run: Run) -> Job:
        job = self.store.job(run.job_id)
        assert job is not None
        return job

    def _finish(self, run: Run) -> None:
        self.runs.pop(run.job_id, None)
        run.log.close()
        self.log_write_errors += run.log.errors
        self.dispatch_dirty = True

    def _flush(self, run: Run, now: float) -> None:
        """Checkpoint pending segments; they leave memory only once the event is recorded."""
        run.last_flush = now
        if run.pending:
            segs, upto = list(run.pending), run.pending_upto
            with self.lc.attempt(run.wid):
                self.lc.append(run.job_id, [ev.JobSegments(segments=segs, upto_s=upto)])
            run.pending = run.pending[len(segs) :]

    def _release(self, worker: WorkerProcess) -> None:
        """The worker is done with its job (it says ``idle`` right after): free it, or recycle it."""
        if worker.state is WorkerState.stopping:
            return
        leftovers = worker.kill_descendants() + kill_adopted(self.pool.pids())
        if leftovers:
            self.log.warning("job.leftovers_killed", job_id=worker.job, worker=worker.wid, processes=leftovers)
        worker.state, worker.job = WorkerState.idle, None
        worker.jobs_done += 1
        _, rss = worker.sample(self.clock.mono())
        if worker.jobs_done >= self.settings.max_jobs_per_worker or rss > self.settings.worker_rss_limit_mb * 2**20:
            self.log.info("worker.recycle", worker=worker.wid, jobs=worker.jobs_done, rss_mb=rss // 2**20)
            worker.retire(self.clock.mono(), self.settings.grace_s + 10)
        self.dispatch_dirty = True

    # --- time-driven ------------------------------------------------------------

    def hold(self, job_id: str, wait_s: float, worker: str | None = None) -> None:
        self.holding[job_id] = self.clock.mono() + wait_s
        self.holding_worker[job_id] = worker
        self.log.info("job.held", job_id=job_id, wait_s=round(wait_s, 1))

    def _publish_quiet(self, now: float) -> None:
        for job_id, due in sorted(self.holding.items(), key=lambda kv: kv[1]):
            if now < due:
                continue
            del self.holding[job_id]
            worker = self.holding_worker.pop(job_id, None)
            job = self.store.job(job_id)
            if job is not None and job.state is JobState.publishing:
                try:
                    with self.lc.attempt(worker or job.worker):
                        self.lc.publish_when_quiet(job)  # a write since moved the mtime: that restarts the job
                except StaleAttempt as e:
                    self.log.warning("job.stale", job_id=job_id, message=str(e))
                self.dispatch_dirty = True

    def next_hold_in(self, now: float) -> float | None:
        return max(0.0, min(self.holding.values()) - now) if self.holding else None

    def tick(self) -> None:
        now = self.clock.mono()
        self._check_starting(now)
        self._publish_quiet(now)
        for run in list(self.runs.values()):
            worker = self.pool.workers.get(run.wid)
            if worker is None or run.stop is not None:
                continue
            try:
                with self.lc.attempt(run.wid):
                    if run.pending and now - run.last_flush >= self.settings.progress_s:
                        self._flush(run, now)
                    if now - run.last_heartbeat >= self.settings.heartbeat_s:
                        self._heartbeat(run, worker, now)
            except StaleAttempt as e:
                self._abandon(worker, run, e)
                continue
            self._check_deadlines(run, worker, now)

    def _check_starting(self, now: float) -> None:
        """A worker that does not become ready in time counts as a failed load."""
        for worker in list(self.pool.workers.values()):
            if worker.state is WorkerState.starting and now - worker.spawned_at >= self.settings.worker_start_timeout_s:
                limit = self.settings.worker_start_timeout_s
                self.pool.load_failures[worker.key] = self.pool.load_failures.get(worker.key, 0) + 1
                self.load_errors[worker.key] = f"the worker did not load {worker.key[1]} within {limit:.0f} s"
                self.log.error("worker.start_timeout", worker=worker.wid, limit_s=limit)
                worker.begin_stop(now, self.settings.grace_s)

    def _heartbeat(self, run: Run, worker: WorkerProcess, now: float) -> None:
        run.last_heartbeat = now
        cpu, rss = worker.sample(now)
        with self.lc.attempt(run.wid):  # every append about a run is fenced by its attempt
            self.lc.append(
                run.job_id, [ev.JobHeartbeat(cpu_percent=cpu, rss_bytes=rss, position_s=round(run.position_s, 3))]
            )

    def _check_deadlines(self, run: Run, worker: WorkerProcess, now: float) -> None:
        s = self.settings
        if not run.probed and now - run.started >= s.probe_timeout_s:
            self.stop(
                run, StopReason("fail", "probe_timeout", f"probing the input took over {s.probe_timeout_s:.0f} s")
            )
        elif now - run.last_progress >= s.stall_s:
            self.stop(run, StopReason("fail", "hung", f"no progress for {s.stall_s:.0f} s; the worker was killed"))
        elif run.hard_deadline is not None and now >= run.hard_deadline:
            limit = run.hard_deadline - run.started
            self.stop(run, StopReason("fail", "timeout", f"still running after {limit:.0f} s (hard timeout); killed"))

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
        run = self.runs.get(job.id)
        if run is not None:
            self.stop(run, StopReason("cancel", "cancelled", "cancelled on request"))
        elif job.state in (JobState.queued, JobState.retry_wait):
            self.lc.cancel(job)

    # --- worker deaths ----------------------------------------------------------

    def on_worker_gone(self, worker: WorkerProcess, exit: Exit) -> None:
        """The worker and its whole tree are gone: settle its job, if it had one."""
        run = self.runs.get(worker.job or "")
        self.dispatch_dirty = True
        if worker.retiring and run is None:
            return
        if worker.state is WorkerState.dead and run is None and worker.job is None and exit.code not in (0, None):
            self.log.warning("worker.died", worker=worker.wid, exit=exit.describe())
        if run is None:
            return
        try:
            self._flush(run, self.clock.mono())
        except StaleAttempt as e:
            self.log.warning("job.stale", job_id=run.job_id, worker=worker.wid, message=str(e))
            self._finish(run)
            return
        self._finish(run)
        job = self._job(run)
        if job.state not in (JobState.running,):
            return
        detail = f"{exit.describe()}" + (f"; {exit.swept} leftover process(es) killed" if exit.swept else "")
        run.log.line(f"{iso(self.clock.wall())} worker {worker.wid} {detail}")
        with structlog.contextvars.bound_contextvars(job_id=job.id):
            try:
                with self.lc.attempt(worker.wid):
                    self._settle(job, run.stop, exit, detail)
            except StaleAttempt as e:
                self.log.warning("job.stale", job_id=job.id, message=str(e))

    def _settle(self, job: Job, stop: StopReason | None, exit: Exit, detail: str) -> None:
        if stop is None:
            self.lc.fail(
                job, "worker_died", f"the worker {detail}", retryable=True, exit_code=exit.code, signal=exit.signal
            )
        elif stop.kind == "cancel":
            self.lc.cancel(job)
        elif stop.kind == "interrupt":
            self.lc.fail(job, "interrupted", stop.message, retryable=True, exit_code=exit.code, signal=exit.signal)
        else:
            self.lc.fail(job, stop.reason, stop.message, retryable=True, exit_code=exit.code, signal=exit.signal)

    def interrupt_all(self) -> None:
        for run in list(self.runs.values()):
            with contextlib.suppress(StaleAttempt):  # moved elsewhere already: nothing of it to keep
                self._flush(run, self.clock.mono())
            with contextlib.suppress(Exception):
                self.stop(
                    run, StopReason("interrupt", "interrupted", "the daemon was stopped; the job resumes at next start")
                )
