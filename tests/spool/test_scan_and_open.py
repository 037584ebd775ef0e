"""Only regular files are taken; symlinks, FIFOs and devices are refused, never followed or opened."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spool.fsio import NotRegularFile, atomic_write, open_regular
from spool.scan import Kind, look, scan


def kinds(inbox: Path) -> dict[str, Kind]:
    return {e.rel: e.kind for e in scan(inbox)}


def test_scan_classifies_entries(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "sub" / "deeper").mkdir(parents=True)
    (inbox / "a.wav").write_bytes(b"x")
    (inbox / "sub" / "deeper" / "b.mp3").write_bytes(b"x")
    (inbox / "a.wav.json").write_text("{}")
    (inbox / "c.wav.part").write_bytes(b"x")
    (inbox / ".hidden").mkdir()
    (inbox / ".hidden" / "d.wav").write_bytes(b"x")
    (inbox / "Thumbs.db").write_bytes(b"x")
    os.symlink("/etc/hostname", inbox / "link.wav")
    os.mkfifo(inbox / "pipe.wav")
    assert kinds(inbox) == {
        "a.wav": Kind.candidate,
        "a.wav.json": Kind.sidecar,
        "c.wav.part": Kind.temp,
        "link.wav": Kind.special,
        "pipe.wav": Kind.special,
        "sub/deeper/b.mp3": Kind.candidate,
    }


def test_symlinked_folders_are_not_entered(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.wav").write_bytes(b"x")
    os.symlink(outside, inbox / "loop")
    os.symlink(inbox, inbox / "self")
    assert kinds(inbox) == {"loop": Kind.special, "self": Kind.special}


def test_non_utf8_names_are_scanned(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    raw = os.fsencode(inbox) + b"/caf\xe9.wav"
    with open(raw, "wb") as fh:
        fh.write(b"x")
    (entry,) = scan(inbox)
    assert os.fsencode(entry.rel) == b"caf\xe9.wav" and entry.kind is Kind.candidate


def test_look_sees_one_path(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"abc")
    entry = look(tmp_path, "a.wav")
    assert entry is not None and entry.identity.size == 3
    assert look(tmp_path, "gone.wav") is None


def test_open_regular_refuses_symlink_fifo_and_directory(tmp_path: Path) -> None:
    os.symlink("/etc/hostname", tmp_path / "link.wav")
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "dir.wav").mkdir()
    for name, kind in (("link.wav", "symlink"), ("pipe.wav", "FIFO"), ("dir.wav", "directory")):
        with pytest.raises(NotRegularFile, match=kind):
            open_regular(tmp_path / name)
    (tmp_path / "ok.wav").write_bytes(b"data")
    fd = open_regular(tmp_path / "ok.wav")
    assert os.read(fd, 10) == b"data"
    os.close(fd)


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_open_regular_refuses_a_device(tmp_path: Path) -> None:
    os.mknod(tmp_path / "null.wav", 0o600 | 0o020000, os.makedev(1, 3))
    with pytest.raises(NotRegularFile, match="device"):
        open_regular(tmp_path / "null.wav")


def test_atomic_write_leaves_no_temp_and_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "out" / "x.txt"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.txt"]
    assert target.stat().st_mode & 0o777 == 0o640
