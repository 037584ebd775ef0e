"""The CLI: clear one-line errors with non-zero exits, --json shapes scripts can rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schema import events as ev
from schema.sqlite_store import SQLiteEventStore
from spoolscribe.main import main
from tests.conftest import Spool, script
from tests.unit.events_fixtures import started, submitted


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    root = tmp_path / "spool"
    assert main(["init", "--root", str(root)]) == 0
    store = SQLiteEventStore(root / "state" / "spool.db")
    store.append("job-abc123def456", [submitted("abc123def456", "talk.wav"), started()])
    store.append("job-fff000111222", [submitted("fff000111222", "sub/b.wav")])
    store.close()
    return root


def test_init_creates_a_private_spool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "s"
    code, out, _ = run(capsys, "init", "--root", str(root))
    assert code == 0 and "spool ready" in out
    assert (root / "state" / "spool.db").exists() and (root / "spool.toml").exists()
    assert (root / "inbox").stat().st_mode & 0o777 == 0o750


def test_jobs_json_items(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "jobs", "--root", str(seeded), "--json")
    items = json.loads(out)
    assert code == 0 and {i["id"] for i in items} == {"abc123def456", "fff000111222"}
    for item in items:
        assert {"id", "state", "name", "progress", "attempts"} <= set(item)
        assert 0.0 <= item["progress"] <= 1.0
    assert {i["name"] for i in items} == {"talk.wav", "b.wav"}


def test_jobs_filtered_by_state(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "jobs", "--root", str(seeded), "--state", "running", "--json")
    assert [i["id"] for i in json.loads(out)] == ["abc123def456"]


def test_show_by_prefix_with_events(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "abc1", "--root", str(seeded), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["id"] == "abc123def456"
    assert [e["type"] for e in doc["events"]] == ["job.submitted", "job.started"]
    code, text, _ = run(capsys, "show", "abc1", "--root", str(seeded))
    assert "job.started" in text and "running" in text


def test_events_json_items(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "events", "--root", str(seeded), "--json")
    items = [json.loads(line) for line in out.splitlines()]
    assert len(items) == 3
    assert all({"type", "stream", "data", "at"} <= set(i) for i in items)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["show", "zzz"], 1, "no job 'zzz'"),
        (["cancel", "zzz"], 1, "no job 'zzz'"),
        (["retry", "abc1"], 1, "only failed or cancelled jobs can be retried"),
        (["logs", "fff0"], 1, "has no log yet"),
    ],
)
def test_user_mistakes_are_one_line_errors(
    seeded: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    got, _out, err = run(capsys, *argv, "--root", str(seeded))
    assert got == code
    assert message in err and err.startswith("spool: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_no_spool_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "status", "--root", str(tmp_path / "nowhere"))
    assert code == 1 and "is not a spool" in err and "spool init" in err


def test_an_unreachable_store_flag_is_one_line_exit_3_without_the_password(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://spool:s3cret@127.0.0.1:1/spool"  # port 1: refused at once, no server needed
    code, _, err = run(capsys, "status", "--root", str(seeded), "--store", url)
    assert code == 3 and err.startswith("spool: error: cannot reach PostgreSQL at postgresql://spool:***@")
    assert err.count("\n") == 1 and "s3cret" not in err


def test_bad_config_value_exits_2_naming_the_key(
    seeded: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPOOL_WORKERS", "lots")
    code, _, err = run(capsys, "status", "--root", str(seeded))
    assert code == 2 and "config workers" in err


def test_cancel_appends_a_request(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cancel", "fff0", "--root", str(seeded))
    assert code == 0 and "cancel requested" in out
    store = SQLiteEventStore(seeded / "state" / "spool.db")
    assert store.read("job-fff000111222")[-1].event == ev.JobCancelRequested(by="cli")
    assert store.job("fff000111222").cancel_requested  # type: ignore[union-attr]
    store.close()


def test_replay_verify_exit_code(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "replay", "--verify", "--root", str(seeded))
    assert code == 0 and "projection matches the log" in out


def test_status_json(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "status", "--root", str(seeded), "--json")
    data = json.loads(out)
    assert code == 0 and data["daemon"]["running"] is False
    assert data["counts"]["running"] == 1 and data["queue_depth"] == 1
    assert [r["id"] for r in data["running"]] == ["abc123def456"]


def test_submit_wait_and_logs_follow_a_real_daemon(spool: Spool, tmp_path: Path) -> None:
    spool.start()
    f = tmp_path / "note.wav"
    f.write_bytes(script(duration=2, segments=2))
    result = spool.cli("submit", str(f), "--wait", "--timeout", "60", "--json", "--root", str(spool.root))
    assert result.returncode == 0, result.stderr
    handed, item = (json.loads(line) for line in result.stdout.splitlines())  # JSON lines: at once, then the result
    assert handed["name"] == "note.wav" and item["id"] == handed["job"]
    assert item["state"] == "succeeded" and item["outputs"]
    logs = spool.cli("logs", item["id"], "--root", str(spool.root), check=True)
    assert "attempt 1" in logs.stdout and "done" in logs.stdout


def test_models_lists_the_bundled_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models", "--root", str(tmp_path), "--json")
    names = [m["name"] for m in json.loads(out)]
    assert code == 0 and "tiny.en" in names
