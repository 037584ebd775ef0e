"""A fleet under what operators actually do (RELIABILITY #31): names, schemas, roles, outages, settings.

Real daemons on the real PostgreSQL server.  Outages go through a TCP proxy in front of the server
(``tests/fleet/proxy.py``): every connection of the daemons behind it is cut and new ones refused,
the server and everyone else untouched.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime

import psutil
import psycopg
import pytest

from schema import events as ev
from schema.errors import StaleAttempt
from schema.store import open_store
from tests.conftest import REPO, script, wait_for, writer_pause
from tests.fleet.conftest import FleetSpool, kill_tree
from tests.fleet.proxy import proxy
from tests.fleet.test_fleet import drop_batch, finish, started_hosts
from tests.pg import URL, fresh_schema

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LONG = "transcription-worker-" + "x" * 40 + ".eu-central-1.compute.internal"  # 94 characters
ODD = "Büro Rechner (Ünïcode) " + "y" * 30


def log_lines(d: object, event: str) -> list[dict[str, object]]:
    out = []
    for line in d.output().splitlines():  # type: ignore[attr-defined]
        if line.startswith("{") and f'"{event}"' in line:
            rec = json.loads(line)
            if rec.get("event") == event:
                out.append(rec)
    return out


def test_long_and_odd_host_names_fence_only_a_stale_leader(fleet: FleetSpool) -> None:
    a = fleet.start_host(LONG)
    b = fleet.start_host(ODD)
    leader = wait_for(fleet.leader, 20, what="a leader")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5:  # five seconds of renewals: ten per host
        writer_pause(0.5)
    assert not log_lines(a, "leader.fenced") and not log_lines(b, "leader.fenced")
    status = json.loads(fleet.cli("status", "--json", check=True).stdout)
    assert sorted(h["host"] for h in status["fleet"] if h["alive"]) == sorted([LONG, ODD])
    assert sum(h["leader"] for h in status["fleet"]) == 1
    frozen, other = (a, b) if leader == LONG else (b, a)
    frozen.proc.send_signal(signal.SIGSTOP)
    try:
        fenced = wait_for(lambda: log_lines(other, "leader.fenced"), 30, what="the frozen leader fenced")
        assert fenced[0]["host"] == leader
        wait_for(
            lambda: any(
                str(r["timestamp"]) >= str(fenced[0]["timestamp"]) for r in log_lines(other, "leader.acquired")
            ),
            20,
            what="the other host leading",
        )
    finally:
        frozen.proc.send_signal(signal.SIGCONT)


def test_a_second_daemon_under_a_host_name_in_use_is_refused(fleet: FleetSpool) -> None:
    fleet.start_host("alpha")
    state = fleet.root.parent / "state-alpha-2"
    twin = fleet.start(SPOOL_STATE_DIR=str(state), SPOOL_HOST="alpha", wait_ready=False)
    assert twin.proc.wait(timeout=30) == 2
    lines = [ln for ln in twin.output().splitlines() if ln.startswith("spool:")]
    assert len(lines) == 1 and "host name 'alpha' is already used" in lines[0]


def test_a_daemon_whose_job_settings_differ_from_the_fleets_is_refused(fleet: FleetSpool) -> None:
    fleet.start_host("alpha")
    other = fleet.start_host("beta", wait_ready=False, SPOOL_MODEL="/models/other", SPOOL_LANGUAGE="de")
    assert other.proc.wait(timeout=30) == 2
    line = next(ln for ln in other.output().splitlines() if ln.startswith("spool:"))
    assert "job settings differ from the fleet's" in line and "language" in line and "model" in line
    fleet.start_host("gamma", SPOOL_WORKERS="2")  # a host's own concerns may differ
    goods = drop_batch(fleet, 6, "s")
    finish(fleet, goods)


def test_a_schema_that_is_not_ours_is_refused_and_readers_never_write(tmp_path: object) -> None:
    with fresh_schema() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE events (id serial, payload text)")  # somebody else's
        s = FleetSpool(tmp_path / "spool", url)  # type: ignore[operator]
        try:
            d = s.start(wait_ready=False, SPOOL_STATE_DIR=str(tmp_path / "state"))  # type: ignore[operator]
            assert d.proc.wait(timeout=30) == 3
            assert "not spoolscribe's (no spool_schema marker)" in d.output()
            with psycopg.connect(url, autocommit=True) as conn:
                assert conn.execute("SELECT to_regclass('spool_schema')").fetchone() == (None,)
        finally:
            s.cleanup()
    with fresh_schema() as url:  # an empty schema: read-only commands refuse and create nothing
        s = FleetSpool(tmp_path / "spool2", url)  # type: ignore[operator]
        try:
            for command in ("status", "jobs", "events"):
                got = s.cli(command)
                assert got.returncode == 3 and "no spoolscribe schema" in got.stderr, (command, got.stderr)
            with psycopg.connect(url, autocommit=True) as conn:
                tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()").fetchone()
                assert tables == (0,)
        finally:
            s.cleanup()
    missing = URL + ("&" if "?" in URL else "?") + "options=-csearch_path%3Dno_such_schema_here"
    got = subprocess.run(
        [sys.executable, "-m", "spoolscribe", "status", "--root", str(tmp_path), "--store", missing],  # type: ignore[operator]
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert got.returncode == 3 and "does not exist" in got.stderr and len(got.stderr.strip().splitlines()) == 1


def test_a_minimal_rights_role_runs_status_health_jobs_and_events(fleet: FleetSpool) -> None:
    fleet.start_host("alpha")
    goods = drop_batch(fleet, 2, "m")
    finish(fleet, goods)
    role = "spool_monitor_" + secrets.token_hex(3)
    schema = re.search(r"search_path%3D(\w+)", fleet.url).group(1)  # type: ignore[union-attr]
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    try:
        monitor = fleet.url.replace("postgres@", f"{role}@")
        flags = ("--store", monitor, "--state-dir", str(fleet.root.parent / "monitor"))
        for command in (("status",), ("health",), ("jobs",), ("events", "--limit", "5")):
            got = fleet.cli(*command, *flags)
            assert got.returncode in (0, 1), (command, got.stderr)  # health: 1 is a warning, not a refusal
            assert "Traceback" not in got.stderr
        cancel = fleet.cli("cancel", fleet.jobs()[0].id, *flags)
        assert (cancel.returncode in (1, 3) and "refused" in cancel.stderr) or "already" in cancel.stderr
    finally:
        with psycopg.connect(URL, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_a_database_outage_costs_no_cpu_and_orphans_nothing(fleet: FleetSpool) -> None:
    """Both hosts behind the proxy; 6 s without the database while their workers keep transcribing."""
    with proxy() as p:
        url = p.url(fleet.url)
        hosts = {h: fleet.start_host(h, SPOOL_STORE=url) for h in ("alpha", "beta")}
        goods = drop_batch(fleet, 6, "o", duration=8, segments=8, delay_s=1.0)
        wait_for(lambda: sum(j.state.value == "running" for j in fleet.jobs()) >= 2, 30, what="jobs running")
        procs = {h: psutil.Process(d.proc.pid) for h, d in hosts.items()}
        before = {h: sum(pr.cpu_times()[:2]) for h, pr in procs.items()}
        p.cut()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 6:
            writer_pause(0.5)
        used = {h: sum(pr.cpu_times()[:2]) - before[h] for h, pr in procs.items()}
        p.restore()
        finish(fleet, goods)
    wall = time.monotonic() - t0
    assert all(cpu / 6 < 0.15 for cpu in used.values()), used  # well below a spinning core (~70 % once)
    s = open_store(fleet.url, fleet.root / "unused.db")
    try:
        orphaned = [r for r in s.read_all(0, types=(ev.JobOrphaned.type,))]
    finally:
        s.close()
    assert not orphaned, orphaned  # no live host's job was taken away after the outage
    assert all(len(started_hosts(fleet, j.id)) == 1 for j in fleet.jobs())
    assert all(d.alive() for d in hosts.values()) and wall < 120


def test_one_leader_at_a_time_across_outages(fleet: FleetSpool) -> None:
    """alpha is cut off twice while beta is not: their leader-only jobs never interleave."""
    fleet.config["SPOOL_SWEEP_S"] = "0.2"
    with proxy() as p:
        a = fleet.start_host("alpha", SPOOL_STORE=p.url(fleet.url))
        b = fleet.start_host("beta")
        for _ in range(2):
            wait_for(lambda: fleet.leader() is not None, 20, what="a leader")
            p.cut()
            writer_pause(3.0)  # the fault's length: more than a lease (2 s)
            p.restore()
            writer_pause(3.0)
    acts = sorted(
        [(datetime.fromisoformat(str(r["timestamp"])), "alpha") for r in log_lines(a, "ops.leader_job")]
        + [(datetime.fromisoformat(str(r["timestamp"])), "beta") for r in log_lines(b, "ops.leader_job")]
    )
    gains = {
        h: [datetime.fromisoformat(str(r["timestamp"])) for r in log_lines(d, "leader.acquired")]
        for h, d in (("alpha", a), ("beta", b))
    }
    assert {h for _, h in acts} >= {"beta"}
    last: dict[str, datetime] = {}
    for at, host in acts:  # a host acting again after the other acted must have won the lock again in between
        other = "beta" if host == "alpha" else "alpha"
        if host in last and other in last and last[other] > last[host]:
            assert any(last[other] < g <= at for g in gains[host]), (host, at)
        last[host] = at


def test_a_stale_attempt_is_refused_before_its_idempotent_replay(fleet: FleetSpool) -> None:
    """A host resumed after its job moved on replays a write whose key is stored: refused all the same."""
    s = open_store(fleet.url, fleet.root / "unused.db", create=True)
    try:
        stream = "job-stale1"
        s.append(stream, [ev.JobSubmitted(job_id="stale1", source="x.wav", size=1, mtime_ns=1)])
        s.append(stream, [ev.JobStarted(attempt=1, worker="w1", pid=1, create_time=1.0, engine="t", model="m")])
        s.append(stream, [ev.JobProgressed(position_s=1.0, duration_s=2.0)], idempotency_key="k1", attempt_of="w1")
        moved = ev.JobFailed(reason="daemon_died", message="m", retryable=True, final=False, attempt=1, counted=False)
        s.append(stream, [moved])  # another host's sweep judged it: the attempt on w1 is over
        with pytest.raises(StaleAttempt):  # key k1 is stored, yet the fence comes first
            s.append(stream, [ev.JobProgressed(position_s=1.0, duration_s=2.0)], idempotency_key="k1", attempt_of="w1")
    finally:
        s.close()


def test_a_hung_worker_of_a_killed_daemon_does_not_outlive_it(fleet: FleetSpool) -> None:
    """kill -9 of the daemon alone (not its tree): the kernel ends its hung worker; a restart finds nothing."""
    d = fleet.start_host("alpha")
    fleet.drop("hung.wav", script(duration=30, segments=30, mode="hang"))
    wait_for(lambda: any(j.state.value == "running" for j in fleet.jobs()), 30, what="the job running")
    workers = [c for c in psutil.Process(d.proc.pid).children() if "processor.worker" in " ".join(c.cmdline())]
    assert workers
    d.proc.kill()
    d.proc.wait(timeout=10)
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [w.pid for w in alive]
    again = fleet.start_host("alpha")  # the same state directory
    assert again.alive() and "workers.leftovers_killed" not in again.output()


def test_health_sees_the_fleet_and_hides_passwords(fleet: FleetSpool) -> None:
    fleet.start_host("alpha")
    beta = fleet.start_host("beta")
    flags = ("--store", fleet.url, "--state-dir", str(fleet.root.parent / "ops"))
    wait_for(lambda: fleet.cli("health", *flags).returncode == 0, 20, what="health OK with both alive")
    kill_tree(beta)
    got = wait_for(lambda: (r := fleet.cli("health", "--json", *flags)).returncode == 1 and r, 20, what="a warning")
    report = json.loads(got.stdout)
    assert any(a["rule"] == "fleet_host_lost" for a in report["alerts"]) and "host beta" in json.dumps(report)
    secret = "postgresql://nobody:hunter2@127.0.0.1:1/none?password=hunter3"
    down = fleet.cli("health", "--json", "--store", secret)
    assert down.returncode == 2 and "store_unavailable" in down.stdout
    assert "hunter2" not in down.stdout + down.stderr and "hunter3" not in down.stdout + down.stderr
