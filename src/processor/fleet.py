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

from ground.errors import SpoolError
from ground.times import iso
from schema import events as ev
from schema.jobs import Job
from schema.store import EventStore


class FleetRefused(SpoolError):
    """This daemon may not join the fleet as configured (a host name in use, settings that differ)."""

    exit_code = 2


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
        self._leader = not self.active  # alone: always the leader; in a fleet only while proven
        self._leader_since: float | None = None  # monotonic: held continuously since
        self._renewed_at: float | None = None  # monotonic time of the last renewal that went through
        self._healthy_since: float | None = None  # monotonic: renewals have gone through without a gap since
        self._was_leader: bool | None = None
        self._stop = threading.Event()

    def check_join(self, settings: dict[str, Any]) -> None:
        """Refuse (one line, exit 2) a host name a live daemon of the fleet uses, or settings that differ."""
        if self.active:
            self._refuse_duplicate_host()
            self._refuse_other_settings(settings)

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
                self._lose_leadership()
                continue
            self._withheld = False
            try:
                self.renew()
            except Exception as e:  # noqa: BLE001 - whatever it is, this thread must live: the next round retries
                self._healthy_since = None
                self._lose_leadership()  # dropped the moment it cannot be proven
                self.log.warning("lease.renew_failed", error=str(e)[:300])

    def renew(self) -> None:
        store = self._lease_store or self.store
        until = iso(datetime.fromisoformat(store.db_now()) + timedelta(seconds=self.lease_s))
        store.append(
            ev.DAEMON_STREAM, [ev.DaemonLeaseRenewed(instance=self.instance, host=self.host, pid=_pid(), until=until)]
        )
        now = self._mono()
        self._renewed_at = now
        if self._healthy_since is None:
            self._healthy_since = now
        lead = store.try_lead() or (self._fence_stale_leader() and store.try_lead())
        if lead and not self._leader:
            self._leader_since = now
        self._leader = lead
        if not lead:
            self._leader_since = None
        self._log_leadership()

    @property
    def leader(self) -> bool:
        """True only while proven: the lock held at the last renewal, and that renewal recent."""
        if not self.active:
            return True
        return self._leader and self.lease_valid()

    def confirm_leader(self) -> bool:
        """Leadership proven now, for a leader-only job about to run: the lock's session answers.

        The advisory lock is exclusive, so two hosts can never both pass this at once; a host
        cut off since its last renewal finds out here, not a renewal later.
        """
        if not self.active:
            return True
        if not self.leader:
            return False
        store = self._lease_store or self.store
        if store.try_lead():
            return True
        self._lose_leadership()
        return False

    def lease_valid(self, now_mono: float | None = None) -> bool:
        """Whether this daemon's own lease is surely still running (renewed within three quarters of it)."""
        if not self.active:
            return True
        now = self._mono() if now_mono is None else now_mono
        return self._renewed_at is not None and now - self._renewed_at < self.lease_s * 0.75

    def may_judge(self, now_mono: float | None = None) -> bool:
        """Whether this leader may declare other hosts dead by their leases.

        Only after it has led, and renewed without a gap, for a whole lease: after an outage every
        host's lease looks expired until the hosts have renewed again, and a new leader has not
        yet seen a full lease period of the others.
        """
        if not self.active:
            return True
        now = self._mono() if now_mono is None else now_mono
        steady = self._healthy_since is not None and now - self._healthy_since >= self.lease_s
        led = self._leader_since is not None and now - self._leader_since >= self.lease_s
        return self.leader and steady and led

    def _lose_leadership(self) -> None:
        if self._leader:
            self._leader, self._leader_since = False, None
            self._log_leadership()

    def _log_leadership(self) -> None:
        if self._leader != self._was_leader:
            if self._leader:
                self.log.info("leader.acquired", instance=self.instance, host=self.host)
            elif self._was_leader:
                self.log.warning("leader.lost", instance=self.instance, host=self.host)
            self._was_leader = self._leader

    def _fence_stale_leader(self) -> bool:
        """End the leader's session if its lease ran out (frozen, or cut off on a half-open connection).

        A dead leader's session dies with it and frees the lock by itself; one that
        lives on without renewing its lease would keep the sweeps from ever running.
        """
        store = self._lease_store or self.store
        holder = store.leader_session()
        if holder is None:
            return True  # just released: try again
        instance = holder.instance
        if instance is None or instance == self.instance or instance in self.alive():
            return False
        ended = store.end_session(holder.pid)
        host = next((lease["host"] for lease in store.leases() if lease["instance"] == instance), None)
        self.log.warning("leader.fenced", stale=instance, host=host, session=holder.pid, ended=ended)
        return ended

    def alive(self) -> set[str]:
        """Instances whose lease has not run out (by the database's clock)."""
        now = self.store.db_now()
        return {lease["instance"] for lease in self.store.leases() if lease["until"] > now}

    def _refuse_duplicate_host(self) -> None:
        now = self.store.db_now()
        for lease in self.store.leases():
            if (
                lease["host"] == self.host
                and lease["until"] > now
                and lease["instance"] not in (self.instance, self.previous)
            ):
                raise FleetRefused(
                    f"host name {self.host!r} is already used by a live daemon of this fleet (instance "
                    f"{lease['instance']}, pid {lease['pid']}); give each daemon its own --host"
                )

    def _refuse_other_settings(self, mine: dict[str, Any]) -> None:
        """Settings that decide a job's result are the fleet's, not a host's: a joiner must match."""
        alive = self.alive() - {self.instance, self.previous}
        if not alive:
            return  # the first (or only) host: its settings are the fleet's
        for rec in reversed(self.store.read_all(0, types=(ev.DaemonStarted.type,))):
            e = rec.event
            if not isinstance(e, ev.DaemonStarted) or e.instance not in alive or not e.settings:
                continue
            differ = sorted(k for k in set(mine) | set(e.settings) if mine.get(k) != e.settings.get(k))
            if differ:
                shown = ", ".join(f"{k} = {mine.get(k)!r} (fleet: {e.settings.get(k)!r})" for k in differ[:4])
                raise FleetRefused(
                    f"this daemon's job settings differ from the fleet's (host {e.host}): {shown}; "
                    "settings that decide a job's result are fleet-wide: use the same spool.toml on every host"
                )
            return

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
        return job.instance != self.instance and self.may_judge() and job.instance not in self.alive()

    def remote_verdict(self, job: Job) -> str | None:
        """For a job on another host: 'lease_expired' or 'alive'; None when its pid can be checked here."""
        if not self.active or job.host in (None, self.host):
            return None
        if not self.may_judge():
            return "alive"  # not yet entitled to call anyone dead: judged again at a later sweep
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
