"""Claim, publish, quarantine and finish: idempotent, never overwriting another job's files."""

from __future__ import annotations

import json
from pathlib import Path

from spool import moves
from spool.layout import Layout


def layout(tmp_path: Path) -> Layout:
    lay = Layout(tmp_path / "spool")
    lay.ensure()
    return lay


def test_layout_is_private(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    for d in lay.dirs():
        assert d.stat().st_mode & 0o777 == 0o750


def test_claim_moves_input_and_sidecar_and_is_idempotent(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    (lay.inbox / "sub").mkdir()
    (lay.inbox / "sub" / "a.wav").write_bytes(b"audio")
    (lay.inbox / "sub" / "a.wav.json").write_text("{}")
    dst = moves.claim(lay, "j1", "sub/a.wav", "sub/a.wav.json")
    assert dst == lay.work / "j1" / "a.wav" and dst.read_bytes() == b"audio"
    assert (lay.work / "j1" / "options.json").exists()
    assert moves.claim(lay, "j1", "sub/a.wav", "sub/a.wav.json") == dst  # second run: already done


def test_publish_mirrors_folders_json_last_and_is_idempotent(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    stage = lay.staging("j1")
    stage.mkdir(parents=True)
    for ext in ("json", "txt", "srt"):
        (stage / f"transcript.{ext}").write_text(ext)
    staged = ["transcript.json", "transcript.txt", "transcript.srt"]
    out = moves.publish(lay, "j1", "a/b/meeting", staged)
    assert out == ["a/b/meeting.txt", "a/b/meeting.srt", "a/b/meeting.json"]
    assert (lay.outbox / "a/b/meeting.txt").read_text() == "txt"
    assert moves.publish(lay, "j1", "a/b/meeting", staged) == out  # interrupted-and-rerun is fine


def test_outbox_taken_sees_every_name_the_filesystem_would_collide(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    (lay.outbox / "Café.txt").write_text("x")  # NFC, as Linux writes it
    assert moves.outbox_taken(lay, "Cafe\u0301")  # NFD, as macOS types it
    assert moves.outbox_taken(lay, "Café")
    assert not moves.outbox_taken(lay, "cafe")
    # a case twin is one file only where the volume says so (macOS); twins among job outputs are the store's
    assert moves.outbox_taken(lay, "CAFÉ") == (lay.outbox / "CAFÉ.txt").exists()


def test_quarantine_writes_error_json_beside_the_input(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    (lay.work / "j1").mkdir()
    (lay.work / "j1" / "a.wav").write_bytes(b"bad")
    doc = moves.error_doc(reason="bad_input", message="not audio", job="j1", attempts=1, source="a.wav")
    moves.quarantine(lay, "j1", "a.wav", "a.wav", doc)
    assert (lay.failed / "a.wav").read_bytes() == b"bad"
    err = json.loads((lay.failed / "a.wav.error.json").read_text())
    assert err == {"reason": "bad_input", "message": "not audio", "job": "j1", "attempts": 1, "source": "a.wav"}
    assert not (lay.work / "j1").exists()
    moves.quarantine(lay, "j1", "a.wav", "a.wav", doc)  # rerun after a crash: harmless


def test_free_path_never_reuses_a_failed_name(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    (lay.failed / "a.wav").write_bytes(b"x")
    assert moves.free_path(lay.failed, "a.wav") == "a (2).wav"
    (lay.failed / "a (2).wav.error.json").write_text("{}")
    assert moves.free_path(lay.failed, "a.wav") == "a (3).wav"


def test_finish_keeps_or_deletes_the_original(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    for job, keep in (("j1", "x/a.wav"), ("j2", None)):
        (lay.work / job).mkdir()
        (lay.work / job / "a.wav").write_bytes(b"x")
        moves.finish(lay, job, "x/a.wav", keep)
        assert not (lay.work / job).exists()
    assert (lay.done / "x/a.wav").exists()


def test_unclaim_returns_unknown_work_to_the_inbox(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    (lay.work / "zz").mkdir()
    (lay.work / "zz" / "a.wav").write_bytes(b"x")
    (lay.inbox / "a.wav").write_bytes(b"other")
    assert moves.unclaim(lay, lay.work / "zz") == ["a (2).wav"]
    assert (lay.inbox / "a.wav").read_bytes() == b"other"
