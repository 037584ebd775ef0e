"""Fuzzed command lines, in process, on a real spool: every outcome is a documented exit code and at most one line.

The invariants (RELIABILITY.md row 30): the exit code is one of the
documented ones and never the internal-error code; stderr is at most one
line and never a traceback (help on stdout is fine); a submit that fails
leaves nothing in the inbox, one that succeeds leaves no ``.part``; a
failed ``init`` creates nothing.  Commands that run until stopped (``run``,
``--follow``) or reach the network (``models install``, ``--open``) are
left out: they are tested on their own.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor import cli_errors
from schema.sqlite_store import SQLiteEventStore
from spoolscribe.main import main
from tests.fuzz import examples
from tests.unit.events_fixtures import started, submitted

COMMANDS = [
    "init",
    "submit",
    "submit",
    "submit",
    "status",
    "jobs",
    "show",
    "events",
    "logs",
    "cancel",
    "retry",
    "replay",
    "migrate",
    "models",
    "health",
    "report",
    "top",
    "bogus",
    "",
]
JOB_IDS = ["abc123def456", "fff000111222"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A seeded spool, files of every kind to submit, and a scratch working directory for relative paths."""
    base = tmp_path_factory.mktemp("clifuzz")
    root = base / "spool"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["init", "--root", str(root)]) == 0
    store = SQLiteEventStore(root / "state" / "spool.db")
    store.append(f"job-{JOB_IDS[0]}", [submitted(JOB_IDS[0], "talk.wav"), started()])
    store.append(f"job-{JOB_IDS[1]}", [submitted(JOB_IDS[1], "sub/b.wav")])
    store.close()
    (root / "logs" / f"{JOB_IDS[0]}.log").write_text("attempt 1\n")
    files = base / "files"
    files.mkdir()
    names = [
        "ok.wav",
        ".hidden.wav",
        "x.part",
        "x.json",
        "Thumbs.db",
        "a\nb.wav",
        os.fsdecode(b"\xff.wav"),
        "é" * 120 + ".wav",
        "sp ace.wav",
    ]
    for name in names:
        (files / name).write_bytes(b"SPOOLTEST{}")
    (files / "folder.wav").mkdir()
    os.mkfifo(files / "pipe.wav")
    scratch = base / "cwd"
    scratch.mkdir()
    cwd = os.getcwd()
    os.chdir(scratch)  # relative roots and state dirs land here, never in the repository
    try:
        yield {
            "root": root,
            "files": [*(files / n for n in names), files / "folder.wav", files / "pipe.wav", files / "missing.wav"],
            "scratch": scratch,
        }
    finally:
        os.chdir(cwd)


TEXT = st.text(max_size=12) | st.sampled_from(["", "-", "--", "-1", "0", "5", "nan", "1e999", "abc1", "%", "_", "\x00"])
NUMBER = st.sampled_from(["0", "1", "3", "10", "0.5", "2"]) | st.sampled_from(["-1", "nan", "inf", "x", "1e999"]) | TEXT
KNOWN_JOB = st.sampled_from(JOB_IDS + [j[:4] for j in JOB_IDS] + ["ABC123"])
JOB = KNOWN_JOB | KNOWN_JOB | st.sampled_from(["abc", "0", "zzz", "ab%", "a_"]) | TEXT
# per command: the options it takes, each with a plausible or a hostile value (so most lines get past parsing)
VALID: dict[str, list[st.SearchStrategy[list[str]]]] = {
    "init": [],
    "submit": [st.just(["--wait"]), st.tuples(st.just("--timeout"), NUMBER).map(list)],
    "status": [],
    "jobs": [
        st.tuples(st.just("--state"), st.sampled_from(["queued", "running", "failed", "x"])).map(list),
        st.tuples(st.just("--limit"), NUMBER).map(list),
    ],
    "show": [JOB.map(lambda j: [j])],
    "events": [JOB.map(lambda j: [j]), st.tuples(st.just("--limit"), NUMBER).map(list)],
    "logs": [JOB.map(lambda j: [j]), st.tuples(st.just("-n"), NUMBER).map(list)],
    "cancel": [JOB.map(lambda j: [j])],
    "retry": [JOB.map(lambda j: [j])],
    "replay": [st.just(["--verify"])],
    "migrate": [st.just(["--create"])],
    "models": [st.just(["list"])],
    "health": [],
    "report": [],
    "top": [st.tuples(st.just("--interval"), NUMBER).map(list)],
    "bogus": [],
    "": [],
}


@st.composite
def argvs(draw: st.DrawFn, world: dict[str, object]) -> list[str]:
    root = str(world["root"])
    files = [str(f) for f in world["files"]]  # type: ignore[attr-defined]
    command = draw(st.sampled_from(COMMANDS))
    words: list[str] = []
    for i, option in enumerate(VALID[command]):
        if (i == 0 and command in ("show", "logs", "cancel", "retry")) or draw(st.integers(0, 2)):  # 2 in 3
            words += draw(option)
    if command == "submit":
        words += draw(st.lists(st.sampled_from(files), min_size=int(draw(st.integers(0, 3)) > 0), max_size=3))
    where = draw(st.sampled_from(["ours"] * 6 + ["elsewhere", "file", "relative", "text", "none"]))
    words += {
        "ours": ["--root", root],
        "elsewhere": ["--root", str(Path(root).parent / "nowhere")],
        "file": ["--root", files[0]],
        "relative": ["--root", "rel/spool"],
        "text": ["--root", draw(TEXT)],
        "none": [],
    }[where]
    noise = st.one_of(
        st.tuples(st.sampled_from(["--json", "-h", "--create", "--verify", "--wait"])).map(list),
        st.tuples(
            st.just("--store"), st.sampled_from(["", "sqlite:///x", "postgresql://u:pw@127.0.0.1:1/x"]) | TEXT
        ).map(list),
        st.tuples(st.just("--state-dir"), st.just("state2") | TEXT).map(list),
        TEXT.map(lambda w: [w]),
    )
    if draw(st.integers(0, 2)) == 0:  # one line in three gets some noise
        words += draw(noise)
    if command == "submit" and "--wait" in words:
        words += ["--timeout", "5"]
    order = draw(st.permutations(range(len(words)))) if draw(st.integers(0, 4)) == 0 else range(len(words))
    words = [words[i] for i in order]  # sometimes shuffled: options before the command, values torn off
    return [command, *words] if command else words


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def tree(path: Path) -> set[str]:
    return {str(p) for p in path.rglob("*")} if path.is_dir() else set()


@given(data=st.data())
@settings(
    max_examples=examples(1500),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_any_command_line_ends_in_a_documented_code_and_one_line(world: dict[str, object], data: st.DataObject) -> None:
    argv = data.draw(argvs(world))
    inbox = Path(str(world["root"])) / "inbox"
    scratch = Path(str(world["scratch"]))
    before_inbox, before_scratch = tree(inbox), tree(scratch)
    code, _out, err = run(argv)
    assert code in cli_errors.EXIT_CODES, (argv, code, err)
    assert code != cli_errors.INTERNAL, (argv, err)
    assert "Traceback" not in err, (argv, err)
    assert err.count("\n") <= 1 and (not err or err.endswith("\n")), (argv, err)
    added = tree(inbox) - before_inbox
    if argv and argv[0] == "submit" and code != 0 and code != cli_errors.REFUSED:
        assert not added, (argv, err, added)  # a failed submit leaves nothing behind
    assert not any(a.endswith(".part") for a in added), (argv, added)
    if argv and argv[0] == "init" and code != 0:
        assert tree(scratch) == before_scratch, (argv, err)
