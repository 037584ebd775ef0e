"""``spool submit``: hand files over, say their job ids at once, and with ``--wait`` follow exactly those jobs.

The job id comes from the hand-over ticket (:mod:`spool.handover`), not from
the file name: a second ``jfk.flac`` is its own job, and ``--wait`` never
reports an earlier job's result.  The nonce in the ticket, recorded by the
daemon in ``job.submitted``, proves the job is this hand-over's.

Whether a daemon will ever take the files is looked at before anything is
copied: the daemon lock (SQLite) or a live lease (a PostgreSQL fleet).  With
none the files are handed over anyway (a daemon started later takes them),
stderr says so, and ``--wait`` ends at once (exit 3) instead of waiting
forever; a daemon that stops while ``--wait`` waits ends it the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ground.errors import SpoolError
from processor import views
from processor.cli_errors import REFUSED, one_line
from processor.config import Settings
from processor.lock import holder_pid
from schema import events as ev
from schema.store import EventStore
from spool import handover
from spool.tickets import Ticket

POLL_S = 0.2
DAEMON_CHECK_S = 5.0  # how often --wait looks whether a daemon still runs; two misses end the wait


class NoDaemon(SpoolError):
    exit_code = REFUSED

    def __init__(self, root: Path, jobs: list[str], stopped: bool = False) -> None:
        waiting = ", ".join(jobs)
        head = "the daemon stopped while --wait waited" if stopped else "no daemon is running for this spool"
        super().__init__(f"{head}; job {waiting} waits in {root}/inbox until one starts (`spool run --root {root}`)")


class NotThisSubmission(SpoolError):
    def __init__(self, job_id: str, name: str) -> None:
        super().__init__(
            f"job {job_id} is not the job of {name!r} (its hand-over ticket differs: the daemon found the id "
            "taken and gave the file a fresh one); `spool jobs` lists it"
        )


class WaitTimedOut(SpoolError):
    def __init__(self, timeout: float, jobs: list[str]) -> None:
        super().__init__(
            f"gave up after {timeout:.0f} s waiting for job {', '.join(jobs)}; is the daemon busy? (`spool status`)"
        )


def daemon_running(settings: Settings, store: EventStore | None = None) -> bool:
    """A daemon holds this state directory's lock (SQLite), or some daemon of the fleet a live lease."""
    if not settings.store:
        return holder_pid(settings.layout.lock) is not None
    own = store is None
    store = store or settings.open_store()
    try:
        now = store.db_now()
        return any(lease["until"] > now for lease in store.leases())
    finally:
        if own:
            store.close()


def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    layout = settings.layout
    sources = [Path(f) for f in args.files]
    for src in sources:  # every name and every file is looked at before anything is copied
        handover.check_name(src.name)
        _check_source(src)
    if not layout.inbox.is_dir():
        raise handover.NoInbox(layout.inbox)
    running = daemon_running(settings)
    handed = []
    for src in sources:
        ticket = handover.hand_over(layout.inbox, src, src.name)
        handed.append(ticket)
        _say(
            args.json,
            {"job": ticket.job, "name": views.display(ticket.name), "file": str(src)},
            f"submitted {_safe(ticket.name)} as job {ticket.job}",
        )
    if not running:
        if args.wait:
            raise NoDaemon(layout.root, [t.job for t in handed])
        sys.stderr.write(
            f"spool: warning: no daemon is running for {layout.root}; the files wait in the inbox "
            f"until one starts (`spool run --root {layout.root}`)\n"
        )
    if not args.wait:
        return 0
    return follow(settings, handed, args.timeout, args.json)


def _check_source(src: Path) -> None:
    try:
        st = os.stat(src)
    except (FileNotFoundError, NotADirectoryError):
        raise handover.NotAFile(str(src), "no such file") from None
    if not stat.S_ISREG(st.st_mode):
        raise handover.NotAFile(str(src), "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file")


def follow(settings: Settings, handed: list[Ticket], timeout: float, as_json: bool) -> int:
    """Wait for exactly the handed-over jobs; print each result as it comes; 0 if all succeeded."""
    store = settings.open_store()
    try:
        return _follow(settings, store, handed, timeout, as_json)
    finally:
        store.close()


def _follow(settings: Settings, store: EventStore, handed: list[Ticket], timeout: float, as_json: bool) -> int:
    pending = {t.job: t for t in handed}
    verified: set[str] = set()
    ok = True
    start = time.monotonic()
    next_check, misses = start + DAEMON_CHECK_S, 0
    pause = threading.Event()
    while True:
        for job_id, ticket in list(pending.items()):
            job = store.job(job_id)
            if job is None:
                continue  # not taken yet
            if job_id not in verified:
                _verify(store, ticket)
                verified.add(job_id)
            if job.state.terminal:
                item = views.job_item(job)
                detail = " ".join(item["outputs"]) or item["message"] or ""
                _say(as_json, item, f"{job.id}  {job.state.value:10} {_safe(job.source)}  {_safe(detail)}")
                ok = ok and job.state.value == "succeeded"
                del pending[job_id]
        if not pending:
            return 0 if ok else 1
        now = time.monotonic()
        if now - start >= timeout:
            raise WaitTimedOut(timeout, list(pending))
        if now >= next_check:
            misses = 0 if daemon_running(settings, store) else misses + 1
            if misses >= 2:
                raise NoDaemon(settings.layout.root, list(pending), stopped=True)
            next_check = now + DAEMON_CHECK_S
        pause.wait(POLL_S)


def _verify(store: EventStore, ticket: Ticket) -> None:
    first = store.read(ev.job_stream(ticket.job))[:1]
    if not first or getattr(first[0].event, "ticket", None) != ticket.nonce:
        raise NotThisSubmission(ticket.job, ticket.name)


def _say(as_json: bool, doc: dict[str, Any], text: str) -> None:
    sys.stdout.write((json.dumps(doc, ensure_ascii=False, default=str) if as_json else text) + "\n")
    sys.stdout.flush()


def _safe(name: str) -> str:
    return one_line(views.display(name))
