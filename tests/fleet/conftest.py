"""A fleet on this machine: several daemons, each its own process and state directory, on one spool and one
PostgreSQL database (a fresh schema per test)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from schema.store import EventStore, open_store
from tests.conftest import DaemonProc, Spool, wait_for
from tests.pg import pg_url  # noqa: F401 - a fixture

LEASE_S = 2.0
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"  # what a flag must override


class FleetSpool(Spool):
    """The shared spool; ``start_host`` runs one more daemon of the fleet."""

    def __init__(self, root: Path, url: str) -> None:
        super().__init__(root)
        self.url = url
        self.config.update(
            {
                "SPOOL_STORE": url,
                "SPOOL_LEASE_S": str(LEASE_S),
                "SPOOL_SWEEP_S": "0.5",
                "SPOOL_STALL_S": "30",
            }
        )
        self.hosts: dict[str, DaemonProc] = {}

    def start_host(self, host: str, *, flags: bool = False, **env: str) -> DaemonProc:
        """``flags``: name the store, state directory, host and lease on the command line instead of the environment."""
        state = self.root.parent / f"state-{host}"
        if flags:
            args = ("--store", self.url, "--state-dir", str(state), "--host", host, "--lease-s", str(LEASE_S))
            d = self.start(*args, SPOOL_STORE=UNREACHABLE, SPOOL_LEASE_S="999", **env)  # flags win
        else:
            d = self.start(SPOOL_STATE_DIR=str(state), SPOOL_HOST=host, **env)
        self.hosts[host] = d
        return d

    def store(self) -> EventStore:  # type: ignore[override]
        return open_store(self.url, self.root / "unused.db")

    def jobs(self) -> list[Any]:
        s = self.store()
        try:
            return s.jobs()
        finally:
            s.close()

    def leader(self) -> str | None:
        """The host whose daemon last logged that it holds the leader lock (and has not lost it)."""
        for host, d in self.hosts.items():
            out = d.output()
            if d.alive() and out.rfind("leader.acquired") > out.rfind("leader.lost"):
                return host
        return None

    def events(self, job_id: str) -> list[Any]:
        s = self.store()
        try:
            return s.read(f"job-{job_id}")
        finally:
            s.close()


def kill_tree(d: DaemonProc, sig: int = signal.SIGKILL) -> None:
    """A host dies: its daemon and every worker under it, at once."""
    procs = [psutil.Process(d.proc.pid)]
    with contextlib.suppress(psutil.Error):
        procs += procs[0].children(recursive=True)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)
    if sig == signal.SIGKILL:
        d.proc.wait(timeout=10)


@pytest.fixture
def fleet(tmp_path: Path, pg_url: str) -> Iterator[FleetSpool]:  # noqa: F811 - the fixture above
    s = FleetSpool(tmp_path / "spool", pg_url)
    yield s
    for d in s.hosts.values():  # a test may leave one stopped
        with contextlib.suppress(Exception):
            kill_tree(d, signal.SIGCONT)
    s.cleanup()


def running_on(fleet: FleetSpool, host: str, timeout: float = 30) -> Any:
    return wait_for(
        lambda: next((j for j in fleet.jobs() if j.state.value == "running" and j.host == host), None),
        timeout,
        what=f"a job running on {host}",
    )
