"""A daemon's place among others sharing one store: its lease, leadership, wake-ups, whose jobs are whose.

Alone (SQLite) there is nothing to share: no lease is written, this daemon
is the leader, and every job it does not supervise belongs to a previous
instance of itself.  In a fleet (PostgreSQL):

* the lease (``daemon.lease``) says until when this instance is alive, by the
  database's clock (hosts' clocks may differ).  A thread with its own
  connection renews it every quarter lease, so a loop busy with a burst of
  intake does not lose it - but only while the loop itself still turns: a
  loop stuck for three quarters of a lease lets the lease run out;
* a job left running by another instance is taken over only once that
  instance's lease has expired - a progressing job on a live host is never
  taken away - or at once if it was this state directory's previous
  instance (the lock we hold proves it dead);
* exactly one daemon holds the leader lock and runs the scheduled sweeps;
  another takes over within half a lease of the leader's death;
* ``NOTIFY`` wakes idle daemons when work appears anywhere.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from schema import events as ev
from schema.jobs import Job
from schema.sqlite_store import iso
from schema.store import EventStore


class Fleet:
    def __init__(
        self,
        store: EventStore,
        *,
        instance: str,
        host: str,
        lease_s: float,
        previous: str | None,
        wake: Callable[[], None],
        log: Any,
        open_store: Callable[[], EventStore] | None = None,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._open_store = open_store
        self._mono = mono
        self._lease_store: EventStore | None = None
        self._thread: threading.Thread | None = None
        self._loop_at = mono()
        self._withheld = False
        self.instance = instance
        self.host = host
        self.lease_s = lease_s
        self.previous = previous
        self._wake = wake
        self.log = log
        self.active = store.fleet
        self.leader = True
        self._was_leader: bool | None = None
        self._stop = threading.Event()

    def start(self, now_mono: float) -> None:
        if not self.active:
            return
        self.store.identify(self.host, self.instance)
        self._lease_store = self._open_store() if self._open_store else self.store
        self._lease_store.identify(self.host, self.instance)
        self._loop_at = now_mono
        self.renew()  # alive in everyone's eyes before this daemon touches anything
        self.store.listen(self._wake, self._stop)
        self._thread = threading.Thread(target=self._renewing, name="fleet-lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._lease_store is not None and self._lease_store is not self.store:
            self._lease_store.close()  # also gives up the leader lock at once

    def tick(self, now_mono: float) -> None:
        """The main loop turned: the lease may be renewed on its behalf."""
        self._loop_at = now_mono

    def next_in(self, now_mono: float) -> float | None:
        """The loop wakes at least this often in a fleet, so an idle daemon keeps its lease."""
        return self.lease_s / 4 if self.active else None

    def _renewing(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            stuck_s = self._mono() - self._loop_at
            if stuck_s > self.lease_s * 0.75:
                if not self._withheld:
                    self.log.error("lease.withheld", loop_stuck_s=round(stuck_s, 1), lease_s=self.lease_s)
                self._withheld = True
                continue
            self._withheld = False
            try:
                self.renew()
            except Exception as e:  # noqa: BLE001 - whatever it is, this thread must live: the next round retries
                self.log.warning("lease.renew_failed", error=str(e)[:300])

    def renew(self) -> None:
        store = self._lease_store or self.store
        until = iso(datetime.fromisoformat(store.db_now()) + timedelta(seconds=self.lease_s))
        store.append(
            ev.DAEMON_STREAM, [ev.DaemonLeaseRenewed(instance=self.instance, host=self.host, pid=_pid(), until=until)]
        )
        self.leader = store.try_lead() or (self._fence_stale_leader() and store.try_lead())
        if self.leader != self._was_leader:
            if self.leader:
                self.log.info("leader.acquired", instance=self.instance, host=self.host)
            elif self._was_leader:
                self.log.warning("leader.lost", instance=self.instance, host=self.host)
            self._was_leader = self.leader

    def _fence_stale_leader(self) -> bool:
        """End the leader's session if its lease ran out (frozen, or cut off on a half-open connection).

        A dead leader's session dies with it and frees the lock by itself; one that
        lives on without renewing its lease would keep the sweeps from ever running.
        """
        store = self._lease_store or self.store
        holder = store.leader_session()
        if holder is None:
            return True  # just released: try again
        pid, name = holder
        parts = name.split()
        instance = parts[2] if len(parts) == 3 and parts[0] == "spoolscribe" else None
        if instance is None or instance == self.instance or instance in self.alive():
            return False
        ended = store.end_session(pid)
        self.log.warning("leader.fenced", stale=instance, host=parts[1], session=pid, ended=ended)
        return ended

    def alive(self) -> set[str]:
        """Instances whose lease has not run out (by the database's clock)."""
        now = self.store.db_now()
        return {lease["instance"] for lease in self.store.leases() if lease["until"] > now}

    def may_take(self, job: Job) -> bool:
        """Whether this daemon may declare ``job`` (running, not supervised here) orphaned now.

        Never a job of this very instance: its loop reconciles those itself (a run kept in
        memory, an outcome not yet recorded), so a sweep cannot kill this daemon's own worker.
        """
        if job.instance == self.instance:
            return False
        if not self.active:
            return True
        if job.instance in (None, self.previous):
            return True
        return job.instance != self.instance and job.instance not in self.alive()

    def remote_verdict(self, job: Job) -> str | None:
        """For a job on another host: 'lease_expired' or 'alive'; None when its pid can be checked here."""
        if not self.active or job.host in (None, self.host):
            return None
        return "alive" if job.instance in self.alive() else "lease_expired"


def _pid() -> int:
    return os.getpid()


def previous_instance(state: Path) -> str | None:
    path = state / "instance"
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def record_instance(state: Path, instance: str) -> None:
    (state / "instance").write_text(instance + "\n")
