"""The daemon: composition root and event loop.

The loop is a handful of single-step functions (intake, dispatch, supervise,
maintain) driven by one queue: watcher hints and worker messages wake it at
once, timers wake it when due, nothing busy-waits.  ``--once`` drains the
inbox and the queue, then exits.
"""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from processor import logs as logs_mod
from processor import registry
from processor.clock import Clock
from processor.config import Settings
from processor.engines import resolve_engine
from processor.fleet import Fleet, previous_instance, record_instance
from processor.intake import Intake, new_job_id
from processor.jobcontrol import JobControl
from processor.joblog import append_late
from processor.lifecycle import Lifecycle
from processor.lock import DaemonLock, SpoolLock
from processor.pool import WorkerPool
from processor.recovery import recover
from processor.sdnotify import Notifier as SystemdNotifier
from processor.supervisor import WorkerProcess, WorkerState, become_subreaper, kill_adopted, kill_recorded
from schema import events as ev
from schema import store_faults
from schema.errors import ConcurrencyError, DatabaseDamaged, IllegalTransition, StoreError
from schema.jobs import JobState
from schema.position import PositionMark
from schema.sqlite_store import iso
from schema.store import EventStore
from spool import checks, faults, statefile
from spool.watcher import Hint, InboxWatcher

VERSION = "0.1.0"
PROBLEM = "spool_problem"  # the intake pause reason while a folder or the database file is wrong
Message = tuple[str, str, Any]


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        env: Mapping[str, str],
        clock: Clock | None = None,
        once: bool = False,
        new_id: Callable[[], str] = new_job_id,
        scheduler_factory: Callable[[Daemon], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.env = dict(env)
        self.clock = clock or Clock()
        self.once = once
        self.layout = settings.layout
        self.log = logs_mod.get("daemon")
        self.queue: queue.Queue[Message] = queue.Queue()
        self.instance = secrets.token_hex(3)
        self._new_id = new_id
        self._scheduler_factory = scheduler_factory
        self._stop_reason: str | None = None
        self._lock = DaemonLock(self.layout.lock, self.layout.root)
        self._spool_lock = SpoolLock(self.layout.root, shared=bool(settings.store))
        self.store: EventStore
        self.lifecycle: Lifecycle
        self.intake: Intake
        self.pool: WorkerPool
        self.control: JobControl
        self.watcher: InboxWatcher | None = None
        self.scheduler: Any = None
        self._last_rescan = 0.0
        self._last_disk_check = -1e9
        self._last_sweep = 0.0
        self.watcher_errors = 0
        self.ready = threading.Event()
        self.systemd = SystemdNotifier(self.env)
        self.host = settings.host or socket.gethostname()
        self._problems: list[str] = []  # what is wrong with the spool's folders or database file now
        self._recreated: list[str] = []  # folders made again, not yet recorded as events
        self._db_identity: tuple[int, int] | None = None  # the SQLite file this daemon opened
        self._last_watch = -1e9
        self._store_retry_at = 0.0  # monotonic: no store work before this (backing off a refusing store)
        self._store_failures = 0  # consecutive refused rounds
        self._internal_errors = 0  # exceptions only the loop's last wall caught (each one a bug)

    # --- start / stop -------------------------------------------------------------

    def start(self) -> None:
        os.umask(0o027)
        self.layout.ensure()
        self._lock.acquire()
        try:
            self._spool_lock.acquire()
            self._open_store()
        except BaseException:
            self._spool_lock.release()
            self._lock.release()
            raise
        become_subreaper()
        leftovers = registry.kill_leftovers(self.layout.workers_file, self.settings.grace_s)
        if leftovers:
            self.log.warning("workers.leftovers_killed", workers=leftovers)
        previous = previous_instance(self.layout.state)
        self.fleet = Fleet(
            self.store,
            instance=self.instance,
            host=self.host,
            lease_s=self.settings.lease_s,
            previous=previous,
            wake=lambda: self.queue.put(("wake", "", None)),
            log=self.log,
            open_store=self.settings.open_store,
            mono=self.clock.mono,
        )
        self.fleet.check_join(self.settings.fleet_settings)  # refused before anything is written
        record_instance(self.layout.state, self.instance)
        started = ev.DaemonStarted(
            pid=os.getpid(),
            host=self.host,
            instance=self.instance,
            version=VERSION,
            settings=self.settings.fleet_settings,
        )
        self.store.append(ev.DAEMON_STREAM, [started])
        self.fleet.start(self.clock.mono())  # alive in everyone's eyes before touching anything
        self.lifecycle = Lifecycle(self.store, self.layout, self.settings, self.clock, self.log)
        self.intake = Intake(self.layout, self.settings, self.lifecycle, self.clock, self.log, self._new_id)
        recover(
            self.lifecycle,
            self.settings.grace_s,
            self.log,
            may_take=self.fleet.may_take,
            host=self.host,
            adopt=self._adopt_at_start,
        )
        self._cursor = self.store.last_position()
        worker_env = {
            **self.env,
            "SPOOLSCRIBE_ROOT": str(self.layout.root),
            "SPOOLSCRIBE_DAEMON_PID": str(os.getpid()),
            "PYTHONUNBUFFERED": "1",
        }
        self.pool = WorkerPool(
            self.settings.workers,
            self.layout.models,
            self.settings.threads,
            worker_env,
            self.instance,
            self.queue,
            self._on_worker_stderr,
            on_spawn=lambda: faults.point("spawn"),
            engine_args=["--device", self.settings.device, "--compute-type", self.settings.compute_type],
        )
        self.control = JobControl(
            self.lifecycle,
            self.pool,
            self.settings,
            self.clock,
            self.log,
            host=self.host,
            instance=self.instance,
            store_ready=self._store_ready,
        )
        for job in self.store.jobs([JobState.publishing]):  # held when the last daemon stopped
            if self.fleet.active and job.instance != self.instance:
                continue  # a live host's publication (the dead ones' were adopted by recovery)
            self.control.hold(job.id, self.lifecycle.quiet_wait(job), worker=job.worker)
        self._pending_cancels()
        default_key = (resolve_engine(self.settings.engine), self.settings.model)
        self.pool.ensure(default_key, self.clock.mono())  # warm one worker before the first drop
        registry.record(self.layout.workers_file, self.instance, self.pool.live())
        if self.settings.watch:
            self.watcher = InboxWatcher(
                self.layout.inbox,
                lambda hint: self.queue.put(("hint", "", hint)),
                lambda exc, n: self.queue.put(("watcher_error", "", (exc, n))),
                force_polling=self.settings.force_polling,
            )
            self.watcher.start()
        self._last_rescan = self.clock.mono()
        self.intake.rescan()
        if self._scheduler_factory is not None:
            self.scheduler = self._scheduler_factory(self)
        self.systemd.ready(f"watching {self.layout.inbox}")
        self.log.info(
            "daemon.started",
            root=str(self.layout.root),
            pid=os.getpid(),
            instance=self.instance,
            engine=default_key[0],
            model=default_key[1],
            workers=self.settings.workers,
        )
        self._watch_spool(self.clock.mono())
        self.ready.set()

    def _open_store(self) -> None:
        """The configured store; for SQLite also the damage checks (a missing file, a lost WAL)."""
        self._mark: PositionMark | None = None
        if not self.settings.store:
            self._mark = PositionMark(self.layout.position_mark)
            self._mark.check_exists(self.layout.db)
        self.store = self.settings.open_store(create=True)
        verdict = self.store.quick_check()
        if verdict != "ok" and self.store.fleet:
            self.store.close()
            raise StoreError(f"the event store refuses this daemon: {verdict}")
        if verdict != "ok":
            raise DatabaseDamaged(str(self.layout.db), verdict)
        if self._mark is not None:
            self._mark.check(self.store.high_water(), self.layout.db)
            self._db_identity = checks.file_identity(self.layout.db)

    def request_stop(self, reason: str) -> None:
        """Thread- and signal-safe: the loop notices on its next wake-up."""
        self._stop_reason = reason
        self.queue.put(("stop", "", reason))

    def install_signal_handlers(self) -> None:
        """SIGTERM, SIGINT and SIGHUP (a closed terminal, a session ending) all stop the daemon in order."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda signum, _frame: self.request_stop(signal.Signals(signum).name))

    def run(self) -> int:
        self.start()
        try:
            self.loop()
        except Exception:
            self.log.exception("daemon.crashed")  # nothing escapes the loop but a bug: keep its stack
            raise
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        """Stop intake, stop workers (TERM, grace, KILL), record the interrupted jobs, release."""
        self.systemd.stopping()
        self.fleet.stop()
        if self.watcher is not None:
            self.watcher.stop()
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                self.scheduler.shutdown()
        self.control.interrupt_all()
        for worker in self.pool.live():
            if worker.state is not WorkerState.stopping or worker.stop_deadline is None:
                worker.begin_stop(self.clock.mono(), self.settings.grace_s)
        deadline = self.clock.mono() + self.settings.grace_s + 5
        while self.pool.live() and self.clock.mono() < deadline:
            try:
                self._poll_stopping()
            except (StoreError, OSError) as e:
                self._store_failed(e)
            if self.pool.live():
                with contextlib.suppress(queue.Empty):
                    self._handle_safely(self.queue.get(timeout=0.05))
        kill_adopted(set())
        with contextlib.suppress(StoreError, OSError):  # what is still refused is found by the next start's recovery
            self.control.outcomes.record_due()
        with contextlib.suppress(StoreError):
            self.store.append(
                ev.DAEMON_STREAM,
                [ev.DaemonStopped(pid=os.getpid(), instance=self.instance, reason=self._stop_reason or "drained")],
            )
        self.store.checkpoint()
        if self._mark is not None:
            self._mark.record(self.store.high_water())
        self.store.close()
        for done in (self.layout.daemon_state, self.layout.workers_file):  # every worker is gone by now
            with contextlib.suppress(OSError):
                os.unlink(done)
        self._spool_lock.release()
        self._lock.release()
        self.log.info("daemon.stopped", reason=self._stop_reason or "drained")

    # --- the loop -------------------------------------------------------------------

    def loop(self) -> None:
        while self._stop_reason is None:
            try:
                msg = self.queue.get(timeout=self._next_wakeup())
                self._handle_safely(msg)
                while True:
                    self._handle_safely(self.queue.get_nowait())
            except queue.Empty:
                pass
            self.tick()
            if self.once and self._store_ready() and self._drained_safely():
                self._stop_reason = "drained"

    def _handle_safely(self, msg: Message) -> None:
        """Handle one message; a refused write costs nothing that the message carried.

        Worker outcomes are kept by JobControl until the store records them; a
        watcher hint is only a hint (intake pauses while the store refuses, and a
        full scan follows its return).
        """
        try:
            self._handle(msg)
        except (StoreError, OSError) as e:
            self._store_failed(e)
        except Exception:  # the last wall: per-item bulkheads should have caught it
            self.log.exception("daemon.internal_error", message=msg[0])
            self._internal_errors += 1

    def _store_ready(self) -> bool:
        return self.clock.mono() >= self._store_retry_at

    def _store_failed(self, e: StoreError | OSError) -> None:
        """Back off (0.25 s doubling to 5 s): an outage costs no CPU, and the first round after it is soon."""
        self._store_failures += 1
        delay = min(5.0, 0.25 * 2 ** (self._store_failures - 1))
        self._store_retry_at = self.clock.mono() + delay
        self.log.error(
            "store.error",
            error=str(e)[:300],
            kept=len(self.control.outcomes.pending) if hasattr(self, "control") else 0,
            retry_in_s=delay,
        )
        self.intake.pause("store_error")

    def _store_recovered(self) -> None:
        self._store_failures = 0
        self.log.warning("store.recovered", kept=len(self.control.outcomes.pending))
        self.intake.resume("store_error")
        self._last_rescan = -1e9  # hints were not acted on meanwhile: look at everything

    def _next_wakeup(self) -> float:
        now = self.clock.mono()
        waits = [1.0]
        if any(w.state is WorkerState.stopping for w in self.pool.workers.values()):
            waits.append(0.05)
        ping = self.systemd.next_ping_in(now)
        if ping is not None:
            waits.append(ping)
        renew = self.fleet.next_in(now) if hasattr(self, "fleet") else None
        if renew is not None:
            waits.append(renew)
        if not self._store_ready():  # nothing below can be done before the store is tried again
            return max(0.0, min([*waits, self._store_retry_at - now]))
        if self.control.dispatch_dirty and len(self.control.runs) < self.pool.size:
            waits.append(0.0)
        if self.control.runs:
            waits.append(min(self.settings.heartbeat_s, self.settings.progress_s, 0.5))
        nxt = self.intake.next_look_in()
        if nxt is not None:
            waits.append(nxt + 0.01)
        if self.control.next_retry_mono is not None:
            waits.append(self.control.next_retry_mono - now + 0.01)
        held = self.control.next_hold_in(now)
        if held is not None:
            waits.append(held + 0.01)
        if self.intake.paused_reason is None:
            waits.append(0.0 if self.intake.more_waiting else self._last_rescan + self.settings.rescan_s - now)
        return max(0.0, min(waits))

    def _handle(self, msg: Message) -> None:
        kind, wid, payload = msg
        if kind == "msg":
            worker = self.pool.workers.get(wid)
            if worker is not None:
                self.control.on_message(worker, payload)
        elif kind == "eof":
            worker = self.pool.workers.get(wid)
            if worker is not None and worker.state is not WorkerState.stopping:
                worker.begin_stop(self.clock.mono(), self.settings.grace_s)
        elif kind == "hint":
            self._on_hint(payload)
        elif kind == "watcher_error":
            exc, n = payload
            self.watcher_errors = n
            self.log.warning("watcher.restarted", error=repr(exc)[:300], restarts=n)
            self._last_rescan = -1e9  # the watcher may have missed events: rescan now
        elif kind == "wake":  # NOTIFY: new work somewhere in the fleet
            self.control.wake()
        elif kind == "ops" and self.scheduler is not None:
            self.scheduler.run(str(payload))
        elif kind == "stop":
            self._stop_reason = str(payload)

    def _on_hint(self, hint: Hint) -> None:
        if self.intake.paused_reason is None:
            self.intake.on_hint(hint)
            self.control.wake()

    def tick(self) -> None:
        """One round: liveness always; the store's work unless it is being backed off."""
        now = self.clock.mono()
        self.systemd.maybe_ping(now)
        self.fleet.tick(now)  # the loop turns, whatever the store does
        self._watch_spool(now)
        try:
            self._poll_stopping()  # a worker's death is noticed even while the store refuses (kept, in order)
            if not self._store_ready():
                return
            self._store_round(now)
        except (StoreError, OSError) as e:
            # Disk full or a lock held too long: every step is retried; nothing half-done is lost.
            self._store_failed(e)
            return
        except Exception:  # the last wall: logged, backed off like a refusal, the loop goes on
            self.log.exception("daemon.internal_error", step="tick")
            self._internal_errors += 1
            self._store_retry_at = self.clock.mono() + 1.0
            return
        if self._store_failures:
            self._store_recovered()

    def _store_round(self, now: float) -> None:
        self._check_disk(now)
        while self._recreated:
            recreated = ev.DaemonFolderRecreated(folder=self._recreated[0], instance=self.instance)
            self.store.append(ev.DAEMON_STREAM, [recreated])
            self._recreated.pop(0)
        if now - self._last_rescan >= self.settings.rescan_s or self.intake.more_waiting:
            self.rescan_now()
        if self.intake.paused_reason is None:
            nxt = self.intake.next_look_in()
            if nxt is not None and nxt <= 0:
                self.intake.recheck_pending()
                self.control.wake()
        self._external_events()
        self.control.tick()
        retry_due = self.control.next_retry_mono is not None and now >= self.control.next_retry_mono
        if (self.control.dispatch_dirty or retry_due) and self.fleet.lease_valid(now):
            self.control.dispatch()  # in a fleet only while this host's lease surely runs: no claims after a gap
        if now - self._last_sweep >= 1.0:
            self._last_sweep = now
            kill_adopted(self.pool.pids())
            self.pool.forget_dead()
            registry.record(self.layout.workers_file, self.instance, self.pool.live())
            if self.scheduler is not None:
                for name in self.scheduler.overdue(now):  # the wall clock jumped: run it anyway
                    self.scheduler.run(name)
        if self._mark is not None:
            self._mark.record(self.store.high_water())

    def _poll_stopping(self) -> None:
        now = self.clock.mono()
        for worker in list(self.pool.workers.values()):
            if worker.state is not WorkerState.stopping:
                continue
            exit = worker.poll_stop(now)
            if exit is not None:
                self.control.on_worker_gone(worker, exit)

    def _external_events(self) -> None:
        """Act on what other processes (the CLI) appended: cancels and manual retries."""
        for rec in self.store.read_all(self._cursor, types=(ev.JobCancelRequested.type, ev.JobRequeued.type)):
            self._cursor = max(self._cursor, rec.position)
            job = self.store.job(ev.job_id_of(rec.stream) or "")
            if job is None:
                continue
            if isinstance(rec.event, ev.JobCancelRequested) and job.cancel_requested:
                with structlog.contextvars.bound_contextvars(job_id=job.id):
                    self.control.cancel(job)
            elif isinstance(rec.event, ev.JobRequeued) and job.state is JobState.queued:
                self.lifecycle.reconcile_input(job)
                self.control.wake()
        self._cursor = max(self._cursor, self.store.last_position())

    def _pending_cancels(self) -> None:
        """Cancels asked for while no daemon ran (held publications included)."""
        for job in self.store.jobs([JobState.queued, JobState.retry_wait, JobState.publishing]):
            if job.cancel_requested and (job.state is not JobState.publishing or job.id in self.control.owned()):
                self.control.cancel(job)

    def _watch_spool(self, now: float) -> None:
        """Every couple of seconds: the spool's folders and database file, then ``state/daemon.json``.

        A missing folder is made again (and recorded); one that cannot be written, or a database
        file deleted or replaced under the daemon, pauses intake until it is fixed - each is an
        alert and a non-OK ``spool health``, which reads the state file from outside.
        """
        if now - self._last_watch < statefile.PERIOD_S:
            return
        self._last_watch = now
        for folder in checks.spool_folders(self.layout):
            if checks.folder_problem(folder) == f"{folder.name}/ is missing":
                with contextlib.suppress(OSError):
                    folder.mkdir(mode=0o750)
                    self._recreated.append(folder.name)
                    self.log.error("spool.folder_recreated", folder=str(folder))
        problems = checks.folder_problems(self.layout)
        if self._db_identity is not None:
            db = checks.database_problem(self.layout.db, self._db_identity)
            problems += [db] if db else []
        if problems != self._problems:
            if problems:
                self.log.error("spool.problem", problems=problems)
            else:
                self.log.warning("spool.problem_resolved", previous=self._problems)
            self._problems = problems
        if problems:
            self.intake.pause(f"{PROBLEM}: {problems[0]}")
        else:
            self.intake.resume(PROBLEM)
        self._write_state()

    def _write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "instance": self.instance,
            "host": self.host,
            "updated_at": iso(self.clock.wall()),
            "paused": self.intake.paused_reason,
            "problems": self._problems,
            "store_failures": self._store_failures,
            "db": list(self._db_identity) if self._db_identity else None,
            "workers_live": len(self.pool.live()),
            "running": len(self.control.runs),
            "version": VERSION,
        }
        try:
            statefile.write(self.layout.daemon_state, state)
        except OSError as e:  # the state directory itself: health will find the file stale and say so
            self.log.debug("state.write_failed", error=str(e)[:200])

    def _check_disk(self, now: float) -> None:
        if now - self._last_disk_check < 1.0:  # statvfs is cheap; resume within a second of space returning
            return
        self._last_disk_check = now
        free_mb = shutil.disk_usage(self.layout.root).free // 2**20
        floor = self.settings.free_disk_floor_mb
        if free_mb < floor and self.intake.paused_reason is None:
            self.intake.pause("disk_full")
            self.log.error("intake.paused", reason="disk_full", free_mb=free_mb, floor_mb=floor)
        elif self.intake.paused_reason == "disk_full" and free_mb >= floor * 1.1:
            self.log.warning("intake.resumed", previous="disk_full", free_mb=free_mb)
            self.intake.resume("disk_full")
            self._last_rescan = -1e9

    def _drained_safely(self) -> bool:
        try:
            return self._drained()
        except (StoreError, OSError) as e:
            self._store_failed(e)
            return False

    def _drained(self) -> bool:
        """For ``--once``: nothing running, queued or settling, and a fresh scan submits nothing."""
        if self.control.busy() or any(w.state is WorkerState.stopping for w in self.pool.workers.values()):
            return False
        counts = self.store.count_by_state()
        live = (JobState.queued, JobState.retry_wait, JobState.running, JobState.publishing)
        if any(counts.get(s.value, 0) for s in live):
            return False
        before = self.intake.submitted
        self.intake.rescan()
        return self.intake.submitted == before and not self.intake.settler.pending()

    # --- what ops may use ---------------------------------------------------------------

    def request_ops(self, name: str) -> None:
        """Called from APScheduler's thread: the job runs on the loop."""
        self.queue.put(("ops", "", name))

    def ops_context(self) -> Any:
        from ops.context import OpsContext

        return OpsContext(
            store=self.store,
            layout=self.layout,
            settings=self.settings,
            now=self.clock.wall,
            log=logs_mod.get("ops"),
            supervised=self.control.owned,
            orphan=self._orphan,
            rescan=self.rescan_now,
            is_leader=self.fleet.confirm_leader,
            classify=self.fleet.remote_verdict,
            may_take=self.fleet.may_take,
            counters=self.counters,
        )

    def rescan_now(self) -> int:
        """One full inbox scan; the scheduled job and the loop's own timer share one clock."""
        self._last_rescan = self.clock.mono()
        if self.intake.paused_reason is not None:
            return 0
        self.control.wake()
        return self.intake.rescan()

    def _orphan(self, job: Any, verdict: str, killed: bool) -> None:
        """A running job this daemon does not supervise: record it orphaned and retry it.

        The sweep judged ``job`` as read; if it changed since (another host acted, its own
        daemon recorded a result), nothing is written: the next sweep judges it afresh.
        """
        try:
            if job.state is JobState.publishing:
                self._adopt(job)
            else:
                self._record_orphan(job, verdict, killed)
        except (ConcurrencyError, IllegalTransition) as e:
            self.log.info("sweep.moved_on", job_id=job.id, verdict=verdict, error=str(e)[:200])

    def _adopt_at_start(self, job: Any) -> Any:
        """Recovery's publishing jobs: in a fleet, made ours (fenced) before anything is moved."""
        if not self.fleet.active or job.instance == self.instance:
            return job
        try:
            return self.lifecycle.adopt(job, f"{self.instance}-publish", self.host, self.instance)
        except ConcurrencyError:
            return None

    def _adopt(self, job: Any) -> Any:
        """Finish another (dead) daemon's publication; ours now, fenced against its return."""
        worker = f"{self.instance}-publish"
        job = self.lifecycle.adopt(job, worker, self.host, self.instance)
        self.control.hold(job.id, self.lifecycle.quiet_wait(job), worker=worker)
        return job

    def _record_orphan(self, job: Any, verdict: str, killed: bool) -> None:
        if verdict == "lease_expired" and job.host == self.host and job.pid and job.create_time:
            killed = kill_recorded(job.pid, job.create_time, self.settings.grace_s) or killed  # its worker, here
        reason = "hung" if verdict == "hung" else "daemon_died"
        message = {
            "lease_expired": "the daemon running it stopped renewing its lease; the job moves to a live host",
            "hung": "its worker (left by a previous daemon) made no progress and was killed",
            "dead": "its worker (left by a previous daemon) is gone",
            "pid_mismatch": "its worker's pid now belongs to another process, which was not signalled",
        }.get(verdict, verdict)
        self.lifecycle.fail(
            job,
            reason,
            message,
            retryable=True,
            prefix=[ev.JobOrphaned(reason=verdict, pid=job.pid, killed=killed)],
            judged=True,
        )
        self.control.wake()

    def counters(self) -> dict[str, Any]:
        return {
            "log_write_errors": self.control.log_write_errors,
            "watcher_restarts": self.watcher_errors,
            "intake_paused": 0 if self.intake.paused_reason is None else 1,
            "workers_live": len(self.pool.live()),
            "daemon_alive": 1,
            "daemon_down_with_work": 0,
            "spool_problems": len(self._problems),
            "internal_errors": self._internal_errors,
        }

    # --- worker output ----------------------------------------------------------------

    def _on_worker_stderr(self, worker: WorkerProcess, line: bytes) -> None:
        run = self.control.runs.get(worker.job or "")
        if run is not None:
            run.log.write(line)
        elif worker.last_job is None or not append_late(self.layout.job_log(worker.last_job), line):
            self.log.debug("worker.output", worker=worker.wid, line=line.decode("utf-8", "replace").rstrip()[:500])


def _start_ops(daemon: Daemon) -> Any:
    from ops import scheduler

    return scheduler.start(daemon.ops_context(), daemon.request_ops)


def main_run(settings: Settings, env: Mapping[str, str], once: bool = False) -> int:
    faults.configure(env)
    store_faults.configure(env)
    from processor import preflight

    ready = preflight.check(settings, env)  # models, device, language: exit 2 before any input is touched
    os.umask(0o027)
    layout = settings.layout
    layout.ensure()  # before logging creates logs/, so every directory gets 0750
    logs_mod.configure(settings.log_level, daemon_log=layout.logs / "daemon.log")
    for checked in ready:
        logs_mod.get("daemon").info("model.ready", **preflight.describe(checked))
    daemon = Daemon(settings, env=env, once=once, scheduler_factory=None if once else _start_ops)
    daemon.install_signal_handlers()
    try:
        return daemon.run()
    finally:
        sys.stderr.flush()
