"""Three daemons as separate processes, each with its own state directory, on one shared spool and one
PostgreSQL database: every input transcribed exactly once, whatever happens to a host."""

from __future__ import annotations

import collections
import json
import signal
import time
from pathlib import Path

import pytest

from schema.jobs import JobState
from tests.conftest import script, survivors, wait_for
from tests.fleet.conftest import LEASE_S, UNREACHABLE, FleetSpool, kill_tree, running_on
from tests.spoolcheck import problems

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HOSTS = ("alpha", "beta", "gamma")


def drop_batch(fleet: FleetSpool, n: int, tag: str, **kw: object) -> list[str]:
    names = [f"{tag}{i:02d}.wav" for i in range(n)]
    for i, name in enumerate(names):
        fleet.drop(name, script(n=f"{tag}{i}", **{"duration": 2, "segments": 2, **kw}))
    return names


def finish(fleet: FleetSpool, goods: list[str], timeout: float = 120) -> None:
    """Every job terminal, then the files: a host moves an input to done/ just after recording success."""
    fleet.wait_terminal(len(goods), timeout=timeout)
    found: list[str] = []

    def settled() -> bool:
        found[:] = problems(fleet, goods, [])
        return not found

    try:
        wait_for(settled, 10, what="the fleet's files to match its log")
    except AssertionError:
        raise AssertionError(found) from None


def started_hosts(fleet: FleetSpool, job_id: str) -> list[str]:
    return [r.event.host for r in fleet.events(job_id) if r.type == "job.started"]


def test_a_batch_is_transcribed_once_and_spread_across_hosts(fleet: FleetSpool, tmp_path: Path) -> None:
    for host in HOSTS:
        fleet.start_host(host, flags=host == HOSTS[-1])
    goods = drop_batch(fleet, 60, "b", delay_s=0.15)
    finish(fleet, goods)
    by_host = collections.Counter(j.host for j in fleet.jobs())
    assert set(by_host) == set(HOSTS), by_host
    assert min(by_host.values()) >= 6, by_host  # each host did a real share, not a token job
    assert all(len(started_hosts(fleet, j.id)) == 1 for j in fleet.jobs())  # nobody started twice
    replay = fleet.cli("replay", "--verify", check=True)
    assert "projection matches the log" in replay.stdout
    status = json.loads(fleet.cli("status", "--json", check=True).stdout)
    alive = [h for h in status["fleet"] if h["alive"]]
    assert sorted(h["host"] for h in alive) == sorted(HOSTS) and sum(h["leader"] for h in alive) == 1
    # an operator's shell names the fleet's database on the command line
    by_flag = ("--store", fleet.url, "--state-dir", str(tmp_path / "operator"))
    text = fleet.cli("status", *by_flag, check=True, SPOOL_STORE=UNREACHABLE).stdout
    assert all(host in text for host in HOSTS) and ", leader" in text
    for d in fleet.hosts.values():
        assert d.stop() == 0
    assert survivors(str(fleet.root)) == []


def test_kill9_of_a_host_moves_its_jobs_after_its_lease(fleet: FleetSpool) -> None:
    for host in HOSTS:
        fleet.start_host(host)
    goods = drop_batch(fleet, 9, "k", duration=6, segments=6, delay_s=0.3)
    victim = running_on(fleet, "beta")
    kill_tree(fleet.hosts["beta"])
    killed_at = time.monotonic()
    moved = wait_for(
        lambda: next((j for j in fleet.jobs() if j.id == victim.id and j.host not in (None, "beta")), None),
        30,
        what="the killed host's job restarted elsewhere",
    )
    took = time.monotonic() - killed_at
    assert took >= LEASE_S * 0.5  # not before the lease could have run out (renewed at half the lease)
    assert moved.state in (JobState.running, JobState.publishing, JobState.succeeded)
    finish(fleet, goods)
    hosts = started_hosts(fleet, victim.id)
    assert hosts[0] == "beta" and hosts[-1] != "beta"
    orphaned = [r.event for r in fleet.events(victim.id) if r.type == "job.orphaned"]
    assert len(orphaned) == 1 and "lease" in orphaned[0].reason


def test_the_sweep_leader_dies_and_another_takes_over(fleet: FleetSpool) -> None:
    for host in HOSTS:
        fleet.start_host(host)
    leader = wait_for(fleet.leader, 20, what="a leader")
    goods = drop_batch(fleet, 6, "l", duration=6, segments=6, delay_s=0.3)
    victim = running_on(fleet, leader)
    kill_tree(fleet.hosts[leader])
    t0 = time.monotonic()
    successor = wait_for(lambda: fleet.leader() not in (None, leader) and fleet.leader(), 20, what="a new leader")
    assert time.monotonic() - t0 <= LEASE_S + 1.0  # within one lease period
    assert successor != leader
    finish(fleet, goods)  # the new leader's sweep found the dead leader's job
    assert started_hosts(fleet, victim.id)[-1] != leader


def test_a_frozen_host_loses_its_jobs_and_never_publishes_a_second_result(fleet: FleetSpool) -> None:
    """A network cut, simulated by SIGSTOP on one daemon for longer than its lease; its worker runs on."""
    for host in HOSTS:
        fleet.start_host(host)
    goods = drop_batch(fleet, 6, "s", duration=4, segments=4, delay_s=0.3)
    frozen = fleet.hosts["gamma"]
    victim = running_on(fleet, "gamma")
    frozen.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(
            lambda: next((j for j in fleet.jobs() if j.id == victim.id and j.state is JobState.succeeded), None),
            60,
            what="the frozen host's job finished elsewhere",
        )
    finally:
        frozen.proc.send_signal(signal.SIGCONT)
    # back from the cut, its worker's result is refused: it learns that the job moved and drops it
    wait_for(lambda: "job.stale" in frozen.output(), 30, what="the resumed host noticing its stale attempt")
    assert frozen.alive()
    finish(fleet, goods)
    types = [r.type for r in fleet.events(victim.id)]
    assert types.count("job.transcribed") == 1 and types.count("job.succeeded") == 1
    assert started_hosts(fleet, victim.id)[0] == "gamma" and started_hosts(fleet, victim.id)[-1] != "gamma"
    late = drop_batch(fleet, 3, "after")  # the resumed host is a full member again
    finish(fleet, goods + late)


def test_a_publication_held_by_a_dead_host_is_adopted_and_published_once(fleet: FleetSpool) -> None:
    """A file written in place is held after transcription until quiet; its host dies while holding it."""
    gamma = fleet.start_host("gamma", SPOOL_RECENT_S="60")
    (fleet.inbox / "inplace.wav").write_bytes(script(duration=1, segments=1, n="in-place"))
    held = wait_for(
        lambda: next((j for j in fleet.jobs() if j.state is JobState.publishing), None), 30, what="a held publication"
    )
    assert held.host == "gamma" and not fleet.outbox_files()
    for host in ("alpha", "beta"):
        fleet.start_host(host)
    kill_tree(gamma)
    fleet.wait_terminal(1, timeout=30)
    adopted = [r.event for r in fleet.events(held.id) if r.type == "job.adopted"]
    assert len(adopted) == 1 and adopted[0].from_instance == held.instance and adopted[0].host != "gamma"
    finish(fleet, ["inplace.wav"])


def test_database_sessions_cut_mid_batch_lose_nothing(fleet: FleetSpool) -> None:
    """What the daemons see of a PostgreSQL restart: every session of theirs terminated, repeatedly."""
    import psycopg

    for host in HOSTS[:2]:
        fleet.start_host(host)
    goods = drop_batch(fleet, 12, "c", duration=3, segments=3, delay_s=0.2)
    cuts = 0
    with psycopg.connect(fleet.url, autocommit=True) as admin:
        deadline = time.monotonic() + 60
        while cuts < 5 and time.monotonic() < deadline:
            wait_for(lambda: any(j.state is JobState.running for j in fleet.jobs()), 30, what="a running job")
            before = admin.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()
            # sessions are made again when next needed: cut whichever exist (one at least) at this moment
            wait_for(
                lambda: (
                    admin.execute(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE application_name LIKE 'spoolscribe %'"
                    ).fetchone()[0]
                    >= 1
                ),
                10,
                what="a session of the fleet to cut",
            )
            cuts += 1
            # one cut per stretch of work: the next only once the fleet has reconnected and recorded more
            wait_for(
                lambda before=before: admin.execute("SELECT MAX(position) FROM events").fetchone()[0] > before[0],
                30,
                what="events recorded after the cut",
            )
    assert cuts == 5
    finish(fleet, goods)
    assert all(d.alive() for d in fleet.hosts.values())
