"""Hand-over and tickets: a handed-over file knows its job id, never replaces a file, leaves nothing on failure."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spool import handover, tickets
from tests.fuzz import examples
from tests.mounts import tmpfs


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    d = tmp_path / "inbox"
    d.mkdir()
    return d


def listing(d: Path) -> list[str]:
    return sorted(os.listdir(d))


def test_the_ticket_is_in_place_before_the_file_appears(inbox: Path, tmp_path: Path) -> None:
    src = tmp_path / "jfk.flac"
    src.write_bytes(b"audio")
    t = handover.hand_over(inbox, src, "jfk.flac")
    assert t.name == "jfk.flac" and tickets.JOB_ID.fullmatch(t.job) and tickets.NONCE.fullmatch(t.nonce)
    assert listing(inbox) == [".jfk.flac.ticket", "jfk.flac"]  # no .part left
    assert (inbox / "jfk.flac").read_bytes() == b"audio"
    doc = json.loads((inbox / ".jfk.flac.ticket").read_bytes())
    assert doc == {"job": t.job, "nonce": t.nonce}
    assert tickets.read(inbox, "jfk.flac") == t


def test_a_taken_name_and_a_hand_over_under_way_get_the_next_name(inbox: Path) -> None:
    (inbox / "x.wav").write_bytes(b"someone else's")
    (inbox / ".x (2).wav.part").write_bytes(b"")  # another hand-over of the same name, still copying
    t = handover.hand_over(inbox, io.BytesIO(b"mine"), "x.wav")
    assert t.name == "x (3).wav"
    assert (inbox / "x.wav").read_bytes() == b"someone else's"
    assert (inbox / "x (3).wav").read_bytes() == b"mine"


def test_options_go_in_as_the_sidecar_of_the_name_it_got_before_that_name_appears(inbox: Path) -> None:
    """An upload's options: ``<name it got>.json``, beside the ticket, never someone else's sidecar replaced."""
    (inbox / "x.wav.json").write_bytes(b'{"language": "de"}')  # a user's sidecar waiting for their x.wav
    t = handover.hand_over(inbox, io.BytesIO(b"mine"), "x.wav", sidecar=b'{"language": "en"}')
    assert t.name == "x (2).wav"  # the name whose sidecar is someone else's is not free for options
    assert (inbox / "x (2).wav.json").read_bytes() == b'{"language": "en"}'
    assert (inbox / "x.wav.json").read_bytes() == b'{"language": "de"}'
    plain = handover.hand_over(inbox, io.BytesIO(b"theirs"), "x.wav")  # no options: the user's sidecar applies
    assert plain.name == "x.wav" and listing(inbox).count("x.wav.json") == 1


def test_a_file_dropped_meanwhile_does_not_get_our_options(inbox: Path) -> None:
    t = handover.hand_over(inbox, CompetingDrop(b"mine", inbox / "x.wav"), "x.wav", sidecar=b"{}")
    assert t.name == "x (2).wav" and not (inbox / "x.wav.json").exists()
    assert (inbox / "x (2).wav.json").read_bytes() == b"{}"


class CompetingDrop(io.BytesIO):
    """A source stream whose last read coincides with someone dropping ``x.wav`` by hand (a real file)."""

    def __init__(self, data: bytes, competitor: Path) -> None:
        super().__init__(data)
        self.competitor = competitor

    def read(self, n: int | None = -1) -> bytes:
        chunk = super().read(n)
        if not chunk and not self.competitor.exists():
            self.competitor.write_bytes(b"dropped meanwhile")
        return chunk


def test_a_file_dropped_meanwhile_is_never_replaced_nor_given_our_ticket(inbox: Path) -> None:
    t = handover.hand_over(inbox, CompetingDrop(b"mine", inbox / "x.wav"), "x.wav")
    assert t.name == "x (2).wav"
    assert (inbox / "x.wav").read_bytes() == b"dropped meanwhile"
    assert (inbox / "x (2).wav").read_bytes() == b"mine"
    assert not (inbox / ".x.wav.ticket").exists()  # the stranger's file carries no ticket of ours
    assert listing(inbox) == [".x (2).wav.ticket", "x (2).wav", "x.wav"]


@pytest.mark.parametrize(
    "name",
    [".hidden.wav", "x.part", "x.tmp", "x~", "x.json", "Thumbs.db", ".DS_Store", "", "..", "a/b.wav", "é" * 130],
)
def test_names_the_daemon_ignores_are_refused_before_anything_is_copied(inbox: Path, name: str) -> None:
    with pytest.raises(handover.RefusedName, match="nothing was handed over"):
        handover.hand_over(inbox, io.BytesIO(b"x"), name)
    assert listing(inbox) == []


def test_sources_that_are_not_regular_files_are_refused(inbox: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)  # opened without blocking, then refused
    for src, what in ((tmp_path, "a directory"), (fifo, "not a regular file"), (tmp_path / "gone.wav", "no such")):
        with pytest.raises(handover.NotAFile, match=what):
            handover.hand_over(inbox, src, "a.wav")
    assert listing(inbox) == []


def test_a_missing_inbox_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(handover.NoInbox, match="does not exist; run `spool init"):
        handover.hand_over(tmp_path / "nope" / "inbox", io.BytesIO(b"x"), "a.wav")


def test_a_full_disk_leaves_nothing_in_the_inbox(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "size=256k") as inbox:
        with pytest.raises(handover.HandOverFailed, match="the disk is full; nothing was left") as info:
            handover.hand_over(inbox, io.BytesIO(b"\0" * 1024 * 1024), "big.wav")
        assert info.value.exit_code == 4
        assert listing(inbox) == []


def test_no_inode_for_the_ticket_leaves_nothing_either(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "few", "size=1m,nr_inodes=2") as inbox:  # the root and one file: the .part
        with pytest.raises(handover.HandOverFailed, match="nothing was left"):
            handover.hand_over(inbox, io.BytesIO(b"data"), "a.wav")
        assert listing(inbox) == []


def test_a_read_only_inbox_is_refused_cleanly(tmp_path: Path) -> None:
    with (
        tmpfs(tmp_path / "ro", readonly=True) as inbox,
        pytest.raises(handover.HandOverFailed, match="Read-only file system"),
    ):
        handover.hand_over(inbox, io.BytesIO(b"data"), "a.wav")


class Interrupted(io.BytesIO):
    def read(self, n: int | None = -1) -> bytes:
        if self.tell():
            raise KeyboardInterrupt
        return super().read(4)


def test_ctrl_c_while_copying_leaves_nothing(inbox: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        handover.hand_over(inbox, Interrupted(b"0123456789"), "a.wav")
    assert listing(inbox) == []


# --- tickets, as the daemon reads them ------------------------------------------------------


def test_unusable_tickets_say_why(inbox: Path, tmp_path: Path) -> None:
    ticket = tickets.path_for(inbox, "a.wav")
    ticket.symlink_to(tmp_path / "elsewhere")
    assert tickets.accept(inbox, "a.wav", lambda _j: True) == (None, "is a symlink, not a regular file")
    ticket.unlink()
    os.mkfifo(ticket)  # never opened for reading, so never a hang
    assert tickets.accept(inbox, "a.wav", lambda _j: True) == (None, "is a FIFO, not a regular file")
    ticket.unlink()
    ticket.write_bytes(b" " * 2000)
    assert tickets.accept(inbox, "a.wav", lambda _j: True)[1] == "is larger than 1024 bytes"
    good = tickets.new("a.wav")
    tickets.write(inbox, good)
    assert tickets.accept(inbox, "a.wav", lambda _j: True) == (good, None)
    assert tickets.accept(inbox, "a.wav", lambda _j: False) == (
        None,
        f"names job {good.job}, which exists already (a stale ticket)",
    )
    assert tickets.accept(inbox, "other.wav", lambda _j: True) == (None, None)
    tickets.discard(inbox, "a.wav")
    tickets.discard(inbox, "a.wav")  # twice is fine
    assert listing(inbox) == []


@settings(max_examples=examples(500), deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(
    raw=st.binary(max_size=120)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=40) | st.just("a" * 12) | st.just("0" * 32),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["job", "nonce", "x"]), inner),
        max_leaves=6,
    ).map(lambda doc: json.dumps(doc).encode())
)
def test_any_ticket_bytes_parse_to_a_strict_ticket_or_bad_ticket(raw: bytes) -> None:
    try:
        t = tickets.parse(raw, Path("t"))
    except tickets.BadTicket:
        return
    assert tickets.JOB_ID.fullmatch(t.job) and tickets.NONCE.fullmatch(t.nonce)
    assert tickets.parse(t.to_bytes(), Path("t")) == t
