"""Every failure of every command: one line on stderr, the documented exit code, nothing left behind.

Real failures only: read-only and full tmpfs mounts, file modes applied by
dropping root's override (setpriv), a closed pipe, a signal, a damaged
projection row. Tests that the machine cannot do skip and say why.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from processor import cli_errors
from spoolscribe.main import main
from tests.conftest import REPO
from tests.mounts import tmpfs, unprivileged


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    assert err.startswith("spool: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def cli(*argv: str, prefix: tuple[str, ...] = (), stdout: int = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    env["PYTHONPATH"] = str(REPO / "src")
    return subprocess.run(
        [*prefix, sys.executable, "-m", "spoolscribe", *argv],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )


@pytest.fixture
def root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    r = tmp_path / "spool"
    assert main(["init", "--root", str(r)]) == 0
    capsys.readouterr()
    return r


# --- usage -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["status", "--nope"],
        ["jobs", "--limit", "x"],
        ["jobs", "--limit", "-3"],
        ["jobs", "--state", "sleeping"],
        ["submit"],
        ["submit", "a.wav", "--timeout", "nan"],
        ["logs", "abc", "-n", "1e3"],
        ["replay"],
    ],
)
def test_usage_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert "--help` lists the options" in one_error_line(err)


def test_help_goes_to_stdout_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "submit", "--help")
    assert code == 0 and err == "" and "--wait" in out


def test_global_options_work_before_the_command(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = run(capsys, "--root", str(root), "--json", "status")
    after = run(capsys, "status", "--root", str(root), "--json")
    assert before[0] == after[0] == 0
    assert json.loads(before[1])["root"] == json.loads(after[1])["root"] == str(root)
    code, _, err = run(capsys, "--root", str(root), "status", "--root", str(root / "nope"))
    assert code == 1 and "nope is not a spool" in err  # the command's own option wins


# --- internal errors ------------------------------------------------------------------------


def test_an_internal_error_is_one_line_exit_70_and_debug_shows_the_traceback(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = sqlite3.connect(root / "state" / "spool.db")
    db.execute(
        "INSERT INTO jobs (id, state, version, submitted_at, updated_at, options_key, doc)"
        " VALUES ('abcabcabcabc', 'queued', 1, 'now', 'now', '', '{damaged')"
    )
    db.commit()
    db.close()
    code, _, err = run(capsys, "jobs", "--root", str(root))
    assert code == cli_errors.INTERNAL
    assert "internal error: JSONDecodeError" in one_error_line(err) and "--debug" in err
    code, _, err = run(capsys, "jobs", "--root", str(root), "--debug")
    assert code == cli_errors.INTERNAL and "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("spool: error: internal error: JSONDecodeError")


# --- the operating system refuses ---------------------------------------------------------------


def test_init_and_run_on_a_root_that_cannot_be_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with tmpfs(tmp_path / "ro", readonly=True) as ro:
        for command in ("init", "run"):
            code, _, err = run(capsys, command, "--root", str(ro / "spool"))
            assert code == cli_errors.OS_REFUSED, err
            assert f"{ro / 'spool'}: read-only file system" in one_error_line(err)
        assert os.listdir(ro) == []
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "init", "--root", str(tmp_path / "file" / "spool"))
    assert code == cli_errors.OS_REFUSED and "is not a directory" in one_error_line(err)


def test_a_failed_init_leaves_nothing_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with tmpfs(tmp_path / "tiny", "size=1m,nr_inodes=12") as mnt:  # room for the folders, not the database
        code, _, err = run(capsys, "init", "--root", str(mnt / "spool"))
        assert code in (cli_errors.OS_REFUSED, cli_errors.REFUSED, cli_errors.BAD_REQUEST), err
        one_error_line(err)
        assert os.listdir(mnt) == []


def test_submit_onto_a_full_disk_leaves_nothing_in_the_inbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.wav"
    big.write_bytes(os.urandom(3 * 2**20))
    with tmpfs(tmp_path / "disk", "size=2m") as mnt:
        assert main(["init", "--root", str(mnt / "spool")]) == 0
        capsys.readouterr()
        code, out, err = run(capsys, "submit", str(big), "--root", str(mnt / "spool"))
        assert code == cli_errors.OS_REFUSED and out == ""
        assert "the disk is full; nothing was left in the inbox" in one_error_line(err)
        assert os.listdir(mnt / "spool" / "inbox") == []


def test_permission_errors_name_the_path(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = tuple(unprivileged())
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"x")
    os.chmod(root / "inbox", 0o555)
    got = cli("submit", str(audio), "--root", str(root), prefix=prefix)
    assert got.returncode == cli_errors.OS_REFUSED and "Permission denied" in one_error_line(got.stderr)
    assert os.listdir(root / "inbox") == []
    os.chmod(root / "inbox", 0o750)

    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"x")
    os.chmod(secret, 0)
    got = cli("submit", str(secret), "--root", str(root), prefix=prefix)
    assert got.returncode == cli_errors.OS_REFUSED
    assert f"{secret}: permission denied" in one_error_line(got.stderr)

    os.chmod(root / "state" / "reports", 0o555)
    got = cli("report", "--root", str(root), prefix=prefix)
    assert got.returncode == cli_errors.OS_REFUSED, got.stderr
    assert "permission denied" in one_error_line(got.stderr).lower() and str(root / "state" / "reports") in got.stderr

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    got = cli("init", "--root", str(locked / "spool"), prefix=prefix)
    assert got.returncode == cli_errors.OS_REFUSED
    assert f"{locked / 'spool'}: permission denied" in one_error_line(got.stderr)


def test_logs_of_an_unreadable_log(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from schema.sqlite_store import SQLiteEventStore
    from tests.unit.events_fixtures import submitted

    store = SQLiteEventStore(root / "state" / "spool.db")
    store.append("job-abc123def456", [submitted("abc123def456", "talk.wav")])
    store.close()
    log = root / "logs" / "abc123def456.log"
    log.write_text("line\n")
    os.chmod(log, 0)
    got = cli("logs", "abc1", "--root", str(root), prefix=tuple(unprivileged()))
    assert got.returncode == cli_errors.OS_REFUSED and f"{log}: permission denied" in one_error_line(got.stderr)


# --- pipes and signals ------------------------------------------------------------------------


def test_a_closed_stdout_is_quiet_exit_141(root: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `spool jobs | head` after head is gone
    try:
        got = cli("jobs", "--root", str(root), stdout=write_end)
    finally:
        os.close(write_end)
    assert got.returncode == cli_errors.BROKEN_PIPE and got.stderr == ""


def test_ctrl_c_is_quiet_exit_130(root: Path) -> None:
    from schema import events as ev
    from schema.sqlite_store import SQLiteEventStore

    store = SQLiteEventStore(root / "state" / "spool.db")
    store.append(ev.DAEMON_STREAM, [ev.LogsPruned(files=1, bytes=2)])
    store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    env["PYTHONPATH"] = str(REPO / "src")
    proc = subprocess.Popen(
        [sys.executable, "-m", "spoolscribe", "events", "--follow", "--root", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
        # as a terminal would: a suite started in the background (`make test &`) has SIGINT ignored,
        # and a child inherits that, so Python would install no KeyboardInterrupt handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    with proc:
        try:
            assert proc.stdout is not None and b"logs.pruned" in proc.stdout.readline()  # history shown: following
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == cli_errors.INTERRUPTED
            assert proc.stderr is not None and proc.stderr.read() == b""
        finally:
            proc.kill()
