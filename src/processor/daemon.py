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
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ground.times import iso
from processor import logs as logs_mod
from processor import registry
from processor.backoff import StoreBackoff
from processor.clock import Clock
from processor.config import Settings
from processor.daemon_start import VERSION, DaemonStart, Message
from processor.intake import Intake, new_job_id
from processor.jobcontrol import JobControl
from processor.joblog import append_late
from processor.lifecycle import Lifecycle
from processor.lock import DaemonLock, SpoolLock
from processor.pool import WorkerPool
from processor.sdnotify import Notifier as SystemdNotifier
from processor.spoolwatch import SpoolWatch
from processor.supervisor import WorkerProcess, WorkerState, kill_adopted
from schema import events as ev
from schema import store_faults
from schema.errors import StoreError
from schema.jobs import JobState
from schema.store import EventStore
from spool import faults, statefile
from spool.watcher import Hint, InboxWatcher

PROBLEM = "spool_problem"  # the intake pause reason while a folder or the database file is wrong


class Daemon(DaemonStart):
    """The one process that runs jobs: its loop, its stop, what ops may ask of it (the start: DaemonStart)."""

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
        self._last_sweep = 0.0
        self.watcher_errors = 0
        self.ready = threading.Event()
        self.systemd = SystemdNotifier(self.env)
        self.host = settings.host or socket.gethostname()
        self.spool_watch = SpoolWatch(self.layout, self.log, statefile.PERIOD_S)
        self.backoff = StoreBackoff(self.clock.mono)
        self._internal_errors = 0  # exceptions only the loop's last wall caught (each one a bug)

    # --- start / stop -------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """Signal-safe: a flag only, which the loop reads at its next wake-up (at most a second away).

        A signal handler runs on the main thread between two bytecodes, possibly while that thread
        holds the queue's lock inside ``queue.get``; a ``put`` from the handler would wait for that
        lock forever (the daemon deaf to SIGTERM, APScheduler's threads stuck behind it).
        """
        self._stop_reason = reason

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
        return self.backoff.ready()

    def _store_failed(self, e: StoreError | OSError) -> None:
        """Back off (:mod:`processor.backoff`) and pause intake until a round goes through."""
        delay = self.backoff.failed()
        kept = len(self.control.outcomes.pending) if hasattr(self, "control") else 0
        self.log.error("store.error", error=str(e)[:300], kept=kept, retry_in_s=delay)
        self.intake.pause("store_error")

    def _store_recovered(self) -> None:
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
            return max(0.0, min([*waits, self.backoff.retry_at - now]))
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
            self.backoff.hold_off(1.0)
            return
        if self.backoff.recovered():
            self._store_recovered()

    def _store_round(self, now: float) -> None:
        self._check_disk(now)
        while self.spool_watch.recreated:
            recreated = ev.DaemonFolderRecreated(folder=self.spool_watch.recreated[0], instance=self.instance)
            self.store.append(ev.DAEMON_STREAM, [recreated])
            self.spool_watch.recreated.pop(0)
        if now - self._last_rescan >= self.settings.rescan_s or self.intake.more_waiting:
            self.rescan_now()
        if self.intake.paused_reason is None:
            nxt = self.intake.next_look_in()
            if nxt is not None and nxt <= 0:
                self.intake.recheck_pending()
                self.control.wake()
        self.commands.follow()
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

    def _watch_spool(self, now: float) -> None:
        """Every couple of seconds: the spool's folders and database file (intake paused while one is
        wrong), then ``state/daemon.json``, which ``spool health`` reads from outside."""
        if not self.spool_watch.due(now):
            return
        problems = self.spool_watch.look()
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
            "problems": self.spool_watch.problems,
            "store_failures": self.backoff.failures,
            "db": list(self.spool_watch.db_identity) if self.spool_watch.db_identity else None,
            "workers_live": len(self.pool.live()),
            "running": len(self.control.runs),
            "version": VERSION,
        }
        try:
            statefile.write(self.layout.daemon_state, state)
        except OSError as e:  # the state directory itself: health will find the file stale and say so
            self.log.debug("state.write_failed", error=str(e)[:200])

    def _check_disk(self, now: float) -> None:
        change = self.spool_watch.disk(now, self.settings.free_disk_floor_mb, self.intake.paused_reason)
        if change == "low":
            self.intake.pause("disk_full")
        elif change == "enough":
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

    def rescan_now(self) -> int:
        """One full inbox scan; the scheduled job and the loop's own timer share one clock."""
        self._last_rescan = self.clock.mono()
        if self.intake.paused_reason is not None:
            return 0
        self.control.wake()
        return self.intake.rescan()

    def counters(self) -> dict[str, Any]:
        return {
            "log_write_errors": self.control.log_write_errors,
            "watcher_restarts": self.watcher_errors,
            "intake_paused": 0 if self.intake.paused_reason is None else 1,
            "workers_live": len(self.pool.live()),
            "daemon_alive": 1,
            "daemon_down_with_work": 0,
            "spool_problems": len(self.spool_watch.problems),
            "internal_errors": self._internal_errors,
        }

    # --- worker output ----------------------------------------------------------------

    def _on_worker_stderr(self, worker: WorkerProcess, line: bytes) -> None:
        run = self.control.runs.get(worker.job or "")
        if run is not None:
            run.log.write(line)
        elif worker.last_job is None or not append_late(self.layout.job_log(worker.last_job), line):
            self.log.debug("worker.output", worker=worker.wid, line=line.decode("utf-8", "replace").rstrip()[:500])


def main_run(
    settings: Settings,
    env: Mapping[str, str],
    once: bool = False,
    scheduler_factory: Callable[[Daemon], Any] | None = None,
) -> int:
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
    daemon = Daemon(settings, env=env, once=once, scheduler_factory=None if once else scheduler_factory)
    daemon.install_signal_handlers()
    try:
        return daemon.run()
    finally:
        sys.stderr.flush()
