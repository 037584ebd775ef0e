"""The daemon's start, step by step: locks and store, fleet membership, recovery, workers, watching.

The order is the promise: nothing is written before this daemon is allowed to
join (its fleet's settings checked), nothing is touched before its lease runs,
recovery makes the spool agree with the log before the first scan, and one
worker is warm before the first drop.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any

import psutil

from processor import registry, sizing
from processor.clock import Clock
from processor.commands import Commands
from processor.config import Settings
from processor.fleet import Fleet, previous_instance, record_instance
from processor.intake import Intake
from processor.jobcontrol import JobControl
from processor.lifecycle import Lifecycle
from processor.lock import DaemonLock, SpoolLock
from processor.orphans import Orphans
from processor.pool import WorkerPool
from processor.recovery import recover
from processor.sdnotify import Notifier as SystemdNotifier
from processor.spoolwatch import SpoolWatch
from processor.supervisor import WorkerProcess, become_subreaper
from processor.worker import hardware
from processor.worker.engines import resolve_engine
from schema import events as ev
from schema.errors import DatabaseDamaged, StoreError
from schema.jobs import JobState
from schema.position import PositionMark
from spool import checks, faults
from spool.layout import Layout
from spool.watcher import InboxWatcher

VERSION = "0.1.0"
Message = tuple[str, str, Any]


class DaemonStart:
    """What the start sets up; :class:`processor.daemon.Daemon` runs the loop on it."""

    settings: Settings
    layout: Layout
    env: dict[str, str]
    clock: Clock
    log: Any
    instance: str
    host: str
    queue: queue.Queue[Message]
    ready: threading.Event
    systemd: SystemdNotifier
    spool_watch: SpoolWatch
    scheduler: Any
    watcher: InboxWatcher | None
    _lock: DaemonLock
    _spool_lock: SpoolLock
    _scheduler_factory: Callable[[Any], Any] | None
    _new_id: Callable[[], str]
    _last_rescan: float

    def _watch_spool(self, now: float) -> None:
        raise NotImplementedError

    def _store_ready(self) -> bool:
        raise NotImplementedError

    def _on_worker_stderr(self, worker: WorkerProcess, line: bytes) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Locks and store, fleet membership, recovery, workers, the watcher, ops: in this order."""
        self._acquire()
        self._join()
        self._recover()
        self._start_workers()
        self._start_watching()
        if self._scheduler_factory is not None:
            self.scheduler = self._scheduler_factory(self)
        self.systemd.ready(f"watching {self.layout.inbox}")
        engine, model = self._default_key()
        self.log.info(
            "daemon.started",
            root=str(self.layout.root),
            pid=os.getpid(),
            instance=self.instance,
            engine=engine,
            model=model,
            workers=self.sized.workers,
        )
        self._watch_spool(self.clock.mono())
        self.ready.set()

    def _acquire(self) -> None:
        """This state directory's lock, the spool's (shared in a fleet), the store; then leftover workers die."""
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

    def _join(self) -> None:
        """Fleet membership checked (refused before anything is written), then daemon.started and a lease."""
        self.fleet = Fleet(
            self.store,
            instance=self.instance,
            host=self.host,
            lease_s=self.settings.lease_s,
            previous=previous_instance(self.layout.state),
            wake=lambda: self.queue.put(("wake", "", None)),
            log=self.log,
            open_store=self.settings.open_store,
            mono=self.clock.mono,
        )
        self.fleet.check_join(self.settings.fleet_settings)
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

    def _recover(self) -> None:
        """The filesystem made to agree with the log for every crash window, before the first scan."""
        self.lifecycle = Lifecycle(self.store, self.layout, self.settings, self.clock, self.log)
        self.intake = Intake(self.layout, self.settings, self.lifecycle, self.clock, self.log, self._new_id)
        self.orphans = Orphans(
            self.lifecycle,
            host=self.host,
            instance=self.instance,
            supervised=lambda: self.control.owned(),
            hold=lambda job: self.control.hold(job.id, self.lifecycle.quiet_wait(job), worker=job.worker),
            wake=lambda: self.control.wake() if hasattr(self, "control") else None,
            classify=self.fleet.remote_verdict,
            may_take=self.fleet.may_take,
            now=self.clock.wall,
            log=self.log,
        )
        recover(self.lifecycle, self.orphans, self.log, may_take=self.fleet.may_take)
        self._cursor = self.store.last_position()

    def _start_workers(self) -> None:
        """The pool and job control; publications held by the last daemon resume; the workers warmed."""
        worker_env = {
            **self.env,
            "SPOOLSCRIBE_ROOT": str(self.layout.root),
            "SPOOLSCRIBE_DAEMON_PID": str(os.getpid()),
            "PYTHONUNBUFFERED": "1",
        }
        self.sized = self._size()
        self.pool = WorkerPool(
            self.sized.workers,
            self.layout.models,
            self.sized.threads,
            worker_env,
            self.instance,
            self.queue,
            self._on_worker_stderr,
            on_spawn=lambda: faults.point("spawn"),
            engine_args=[
                *("--device", self.settings.device, "--compute-type", self.settings.compute_type),
                *("--batch", str(self.sized.batch)),
            ],
            lanes=self.sized.lanes,
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
        self.commands = Commands(self.lifecycle, self.control, self._cursor)
        self.commands.pending_cancels()
        self.pool.warm(self._default_key(), self.clock.mono())  # loaded before the first drop, every one
        registry.record(self.layout.workers_file, self.instance, self.pool.live())

    def _size(self) -> sizing.Sizing:
        """workers, threads and lanes: as configured, or worked out for this machine (processor.sizing)."""
        s = self.settings
        engine = resolve_engine(s.engine)
        try:
            device = hardware.select(engine, s.device, s.compute_type, hardware.probe(engine)).device
        except (hardware.HardwareError, ImportError):
            device = "cpu"  # preflight refused a device that is not there before this; a test engine has none
        free_mb = psutil.virtual_memory().available // 2**20
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        chosen = sizing.size(
            engine=engine,
            device=device,
            cores=cores,
            free_mb=free_mb,
            model=s.model,
            workers=s.workers,
            threads=s.threads,
            lanes=s.lanes,
            batch=s.batch_size,
        )
        self.log.info(
            "workers.sized",
            workers=chosen.workers,
            threads=chosen.threads,
            lanes=chosen.lanes,
            batch=chosen.batch,
            why=chosen.why,
        )
        return chosen

    def _default_key(self) -> tuple[str, str]:
        return resolve_engine(self.settings.engine), self.settings.model

    def _start_watching(self) -> None:
        """The watcher (hints) and the first full scan: files dropped while no daemon ran."""
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
            self.spool_watch.db_identity = checks.file_identity(self.layout.db)
