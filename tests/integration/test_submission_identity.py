"""Submission identity, real daemon: a hand-over's ticket becomes its job; stale or bad tickets cost only the id."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

from schema.jobs import JobState
from spool import handover, tickets
from tests.conftest import REPO, Spool, script, wait_for
from tests.pg import pg_url  # noqa: F401 - a fixture


def first_event(spool: Spool, job_id: str) -> object:
    store = spool.store()
    try:
        return store.read(f"job-{job_id}")[0].event
    finally:
        store.close()


def job(spool: Spool, job_id: str) -> object:
    return next((j for j in spool.jobs() if j.id == job_id), None)


def test_a_handed_over_file_becomes_the_job_its_ticket_names(spool: Spool) -> None:
    spool.start()
    t = handover.hand_over(spool.inbox, io.BytesIO(script(duration=1, segments=1)), "talk.wav")
    done = wait_for(lambda: (j := job(spool, t.job)) and j.state.terminal and j, 30, what="the ticket's job")
    assert done.state is JobState.succeeded and done.source == "talk.wav"
    submitted = first_event(spool, t.job)
    assert submitted.ticket == t.nonce  # type: ignore[attr-defined]
    assert not tickets.path_for(spool.inbox, "talk.wav").exists()  # taken with its file
    assert spool.outbox_files() == ["talk.json", "talk.srt", "talk.txt", "talk.vtt"]


def test_stale_and_malformed_tickets_get_a_fresh_id_and_are_reported(spool: Spool) -> None:
    spool.start()
    first = handover.hand_over(spool.inbox, io.BytesIO(script(duration=1, segments=1, n=1)), "a.wav")
    wait_for(lambda: (j := job(spool, first.job)) and j.state.terminal, 30, what="the first job")
    # A ticket naming a job that exists (a leftover of a crash, or forged) and one that is not JSON.
    stale = tickets.Ticket(first.job, "0" * 32, "b.wav")
    tickets.write(spool.inbox, stale)
    tickets.path_for(spool.inbox, "c.wav").write_bytes(b"not json")
    spool.drop("b.wav", script(duration=1, segments=1, n=2))
    spool.drop("c.wav", script(duration=1, segments=1, n=3))
    jobs = spool.wait_terminal(3, timeout=30)
    by_source = {j.source: j for j in jobs}
    assert by_source["b.wav"].id != first.job and by_source["c.wav"].id not in (first.job, stale.job)
    assert all(j.state is JobState.succeeded for j in jobs)
    assert first_event(spool, by_source["b.wav"].id).ticket is None  # type: ignore[attr-defined]
    out = spool.daemons[0].output()
    assert "intake.ticket_refused" in out and "exists already" in out and "is not JSON" in out
    assert sorted(p.name for p in spool.inbox.iterdir()) == []  # refused tickets are cleared with their file


# --- spool submit ---------------------------------------------------------------------------


def submit(spool: Spool, *files: Path, wait: bool = True, timeout: str = "60") -> subprocess.CompletedProcess[str]:
    extra = ["--wait", "--timeout", timeout] if wait else []
    return spool.cli("submit", *map(str, files), *extra, "--json", "--root", str(spool.root))


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_wait_follows_its_own_job_and_never_an_earlier_one_of_the_same_name(spool: Spool, tmp_path: Path) -> None:
    first_file, second_file = tmp_path / "one" / "jfk.flac", tmp_path / "two" / "jfk.flac"
    for i, f in enumerate((first_file, second_file)):
        f.parent.mkdir()
        f.write_bytes(script(duration=1, segments=1, n=i))
    d = spool.start()
    first = submit(spool, first_file)
    assert first.returncode == 0, first.stderr
    (handed1, done1) = lines(first.stdout)
    assert done1["id"] == handed1["job"] and done1["state"] == "succeeded"

    second = submit(spool, second_file)
    assert second.returncode == 0, second.stderr
    (handed2, done2) = lines(second.stdout)
    assert handed2["job"] != handed1["job"] and done2["id"] == handed2["job"]
    assert done2["outputs"] == ["jfk (2).txt", "jfk (2).srt", "jfk (2).vtt", "jfk (2).json"]

    d.stop()  # no daemon now: the old success of jfk.flac must not be reported
    t0 = time.monotonic()
    third = submit(spool, second_file)
    assert third.returncode == 3 and time.monotonic() - t0 < 20
    (handed3,) = lines(third.stdout)
    assert third.stderr.count("\n") == 1 and "no daemon is running for this spool" in third.stderr
    assert handed3["job"] in third.stderr and (spool.inbox / "jfk.flac").exists()

    plain = submit(spool, second_file, wait=False)
    assert plain.returncode == 0 and "spool: warning: no daemon is running" in plain.stderr
    assert [h["name"] for h in lines(plain.stdout)] == ["jfk (2).flac"]


def test_a_daemon_stopping_while_wait_waits_ends_it_with_exit_3(spool: Spool, tmp_path: Path) -> None:
    long = tmp_path / "long.wav"
    long.write_bytes(script(duration=600, segments=600, delay_s=0.5))
    d = spool.start()
    proc = subprocess.Popen(
        [sys.executable, "-m", "spoolscribe", "submit", str(long), "--wait", "--root", str(spool.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=spool.env(),
        cwd=REPO,
    )
    with proc:
        try:
            wait_for(lambda: any(j.state is JobState.running for j in spool.jobs()), 30, what="the job running")
            d.stop()
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 3, err
    assert err.count("\n") == 1 and "the daemon stopped while --wait waited" in err
    assert out.startswith("submitted long.wav as job ")


def test_names_the_daemon_ignores_are_refused_and_nothing_is_copied(spool: Spool, tmp_path: Path) -> None:
    good, bad = tmp_path / "ok.wav", tmp_path / "x.part"
    good.write_bytes(b"x")
    bad.write_bytes(b"x")
    got = spool.cli("submit", str(good), str(bad), "--root", str(spool.root))
    assert got.returncode == 1 and got.stdout == ""
    assert got.stderr.startswith("spool: error: 'x.part': a hidden or temporary name") and got.stderr.count("\n") == 1
    assert list(spool.inbox.iterdir()) == []


def test_a_fleet_without_a_live_lease_is_no_daemon(spool: Spool, tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"x")
    spool.cli("migrate", "--create", "--store", pg_url, "--root", str(spool.root), check=True)
    got = spool.cli("submit", str(audio), "--wait", "--store", pg_url, "--root", str(spool.root))
    assert got.returncode == 3 and "no daemon is running for this spool" in got.stderr, got.stderr
