"""Intake: from files in inbox/ to submitted, claimed jobs.

Watcher hints and scans both end in :meth:`Intake.look`: one ``lstat``, the
settle rule, then submit + claim.  Sidecars (``<name>.json``) are read with
the same no-follow rules and travel with their input; invalid ones make the
job fail at once with a message saying which key is wrong.
"""

from __future__ import annotations

import collections
import errno
import os
import posixpath
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ground.times import iso
from processor import options as opt
from processor.clock import Clock
from processor.config import Settings
from processor.lifecycle import Lifecycle
from processor.worker.engines import resolve_engine
from schema import events as ev
from schema.errors import AlreadySubmitted, ConcurrencyError, StoreError
from schema.jobs import Job
from schema.reasons import Reason
from spool import fsio, moves, names, tickets
from spool.fsio import NotRegularFile, open_regular
from spool.layout import Layout
from spool.scan import MAX_DEPTH, Entry, Kind, look, scan
from spool.settle import Identity, Settler
from spool.watcher import Hint

SUBMIT_PER_PASS = 256
LATE_SIDECAR_S = 60.0  # a sidecar written this soon after its audio was taken is late, not early for the next
# The system's condition, not one file's: the step is retried once the daemon has backed off.
SYSTEM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EMFILE, errno.ENFILE, errno.ENOMEM})


def new_job_id() -> str:
    """12 hex digits: random, so any 4-6 leading characters usually name one job."""
    return secrets.token_hex(6)


class Intake:
    def __init__(
        self,
        layout: Layout,
        settings: Settings,
        lifecycle: Lifecycle,
        clock: Clock,
        log: Any,
        new_id: Callable[[], str] = new_job_id,
    ) -> None:
        self.layout = layout
        self.settings = settings
        self.lifecycle = lifecycle
        self.clock = clock
        self.log = log
        self.new_id = new_id
        self.settler = Settler(settings.settle_s, settings.trust_mtime)
        self.paused_reason: str | None = None
        self.submitted = 0
        self.last_scan_s: float | None = None
        self.last_scan_files = 0
        self.more_waiting = False  # a scan stopped at the per-pass limit
        self.unclaimed: dict[str, str] = {}  # inbox path -> job submitted but not yet moved (disk full)
        self.refused: dict[str, Identity] = {}  # inbox path -> identity that could not even be quarantined
        self.sidecars_judged: dict[str, Identity] = {}  # orphan sidecars already checked for lateness
        self._current: Job | None = None  # the job the file being considered became, if it got that far
        self._backlog: collections.deque[Entry] = collections.deque()

    def pause(self, reason: str) -> None:
        """Stop taking files (disk below the floor, store refusing); the first reason stands until resumed."""
        if self.paused_reason is None:
            self.paused_reason = reason

    def resume(self, reason: str) -> None:
        """Take files again, if ``reason`` is what paused intake (``reason: detail`` matches too)."""
        if self.paused_reason is not None and self.paused_reason.split(":", 1)[0] == reason:
            self.paused_reason = None

    # --- hints and scans --------------------------------------------------------

    def on_hint(self, hint: Hint) -> None:
        renamed: set[str] = set()
        for rel in hint.deleted:
            head, base = posixpath.split(rel)
            if names.is_temp(base):
                renamed |= {posixpath.join(head, f) if head else f for f in names.final_names(base)}
        for rel in sorted(hint.added | hint.modified):
            path = self.layout.inbox / rel
            if path.is_dir() and not path.is_symlink():
                for entry in scan(self.layout.inbox, under=rel):  # a folder moved in
                    self.consider(entry)
                continue
            seen = look(self.layout.inbox, rel)
            if seen is not None:
                self.consider(seen, renamed=rel in renamed and rel in hint.added)

    def rescan(self) -> int:
        """Look at everything in the inbox; returns how many entries were seen.

        At most :data:`SUBMIT_PER_PASS` files are submitted per pass, so a huge
        backlog cannot hold the loop (signals, heartbeats, cancels) for minutes;
        the rest of the scan is kept and worked through on the next passes
        (``more_waiting``), each entry looked at again just before it is taken.
        """
        t0 = self.clock.mono()
        if self._backlog:
            self._drain_backlog()
            return len(self._backlog)
        present = set()
        entries = []
        for entry in scan(self.layout.inbox):
            present.add(entry.rel)
            entries.append(entry)
        self.settler.prune(present, self.clock.mono())
        self.last_scan_s = self.clock.mono() - t0
        self.last_scan_files = len(present)
        self._backlog.extend(entries)
        self._drain_backlog()
        return len(present)

    def _drain_backlog(self) -> None:
        before = self.submitted
        while self._backlog and self.submitted - before < SUBMIT_PER_PASS:
            entry = self._backlog.popleft()
            if self._backlog and entry.kind is Kind.candidate:
                fresh = look(self.layout.inbox, entry.rel)  # the scan may be minutes old by now
                if fresh is None:
                    continue
                entry = fresh
            self.consider(entry)
        self.more_waiting = bool(self._backlog)

    def recheck_pending(self) -> None:
        """Look again at remembered, unsettled files whose settle time has come."""
        for rel in self.settler.pending():
            entry = look(self.layout.inbox, rel)
            if entry is None:
                self.settler.gone(rel)
            else:
                self.consider(entry)

    def next_look_in(self) -> float | None:
        return self.settler.next_look(self.clock.mono())

    # --- one file -----------------------------------------------------------------

    def consider(self, entry: Entry, *, renamed: bool = False) -> Job | None:
        """Look at one inbox entry.  A bulkhead: nothing about this one file can stop the loop.

        A refusing store or a system condition (disk full, no file descriptors) propagates: the
        daemon backs off and the file waits in the inbox.  Anything else this file causes ends
        it in failed/ with ``internal_error`` (type and message in its error.json and event).
        """
        refused = self.refused.get(entry.rel)
        if refused is not None and refused == entry.identity:
            return None  # could not even be moved to failed/; looked at again once it changes
        self._current = None
        try:
            return self._consider(entry, renamed=renamed)
        except StoreError:
            raise
        except OSError as e:
            if e.errno in SYSTEM_ERRNOS:
                raise
            return self._contain(entry, e)
        except Exception as e:  # noqa: BLE001 - a bulkhead: one file's surprise must not stop the spool
            return self._contain(entry, e)

    def _consider(self, entry: Entry, *, renamed: bool = False) -> Job | None:
        if entry.kind is Kind.temp:
            self.settler.saw_temp(entry.identity.dev, entry.identity.ino, self.clock.mono())
            return None
        if self.paused_reason:
            return None
        if entry.kind is Kind.sidecar:
            return self._consider_sidecar(entry)
        if entry.kind is Kind.unreachable:
            return self._unreachable(entry)
        if entry.rel in self.unclaimed:  # submitted already; its claim failed: finish it, never resubmit
            job = self.lifecycle.store.job(self.unclaimed[entry.rel])
            if job is None or self.lifecycle.reconcile_input(job):
                del self.unclaimed[entry.rel]
            return job
        if entry.kind is Kind.special:
            return self._submit(entry, "special", refused=f"it is a {_kind(entry.mode)}, not a regular file")
        how = self.settler.observe(entry.rel, entry.identity, self.clock.mono(), self.clock.wall_ns(), renamed)
        if how is None:
            return None
        holder = self.lifecycle.store.holder(entry.rel)
        if holder is not None:  # written in place and not finished: the name (whatever its inode) is its input
            self.log.debug("intake.held", source=names.display(entry.rel), job_id=holder.id)
            return None
        return self._submit(entry, how)

    def _consider_sidecar(self, entry: Entry) -> Job | None:
        """A sidecar waits for its audio, unless it came too late for it: then it is reported, never applied.

        Late means its audio is gone from the inbox and a job of that name was submitted within
        :data:`LATE_SIDECAR_S` before the sidecar was written.  An older job of the same name is a
        previous drop, and the sidecar waits for the next file (written first, as it should be).
        """
        audio = entry.rel[: -len(names.SIDECAR_SUFFIX)]
        if not audio or os.path.lexists(self.layout.inbox / audio):
            return None
        if self.sidecars_judged.get(entry.rel) == entry.identity:
            return None
        how = self.settler.observe(entry.rel, entry.identity, self.clock.mono(), self.clock.wall_ns())
        if how is None:
            return None  # looked at again once it has stood still
        self.sidecars_judged[entry.rel] = entry.identity
        written = datetime.fromtimestamp(entry.identity.mtime_ns / 1e9, UTC)
        recent = self.lifecycle.store.submitted_between(
            iso(written - timedelta(seconds=LATE_SIDECAR_S)), iso(written + timedelta(seconds=1))
        )
        taken = next((j for j in recent if j.source == audio), None)
        if taken is None:
            return None
        late = (
            f"these options arrived after {names.display(audio)} was taken (job {taken.id}) and were not applied; "
            "write the sidecar first, then the audio (drop the audio again to use them)"
        )
        return self._submit(entry, how, refused=late, reason=Reason.late_sidecar)

    def _unreachable(self, entry: Entry) -> Job:
        """A folder too deep or a path too long to open: it cannot be taken, so it is reported, once."""
        options = opt.resolve(self.settings.job_defaults, {}, {})
        job_id = self.new_id()
        message = (
            f"{names.display(entry.rel)[:300]} is nested deeper than {MAX_DEPTH} folders or its path is longer "
            "than the system can open; nothing below it can be taken: move it to a shorter path in the inbox"
        )
        failed_rel = f"unreachable-{job_id}"  # the input cannot be moved; its report is here
        submitted = ev.JobSubmitted(
            job_id=job_id,
            source=entry.rel,
            size=entry.identity.size,
            mtime_ns=entry.identity.mtime_ns,
            options=options,
            options_key=opt.options_key(options),
            settled_by="special",
        )
        failed = ev.JobFailed(
            reason=Reason.unreachable_path,
            message=message,
            retryable=False,
            final=True,
            attempt=0,
            failed_path=failed_rel,
            counted=False,
        )
        job = self.lifecycle.append(job_id, [submitted, failed])
        doc = moves.error_doc(reason=failed.reason, message=message, job=job_id, attempts=0, source=entry.rel)
        fsio.atomic_write(self.layout.failed / f"{failed_rel}{moves.ERROR_SUFFIX}", doc)
        self.refused[entry.rel] = entry.identity  # reported; it stays where it is
        self.log.error("intake.unreachable", job_id=job_id, source=names.display(entry.rel)[:300])
        return job

    def _contain(self, entry: Entry, e: Exception) -> Job | None:
        """End one file that raised: to failed/ with the exception, or, if even that fails, left alone."""
        self.log.exception("intake.internal_error", source=names.display(entry.rel))
        message = f"{type(e).__name__}: {e}"[:500]
        try:
            job = self._current
            if job is not None:
                job = self.lifecycle.store.job(job.id) or job
                if not job.state.terminal:
                    job = self.lifecycle.fail_now(job, Reason.internal_error, message)
            else:
                job = self._submit(entry, entry.kind.value, refused=message, reason=Reason.internal_error)
            if os.path.lexists(self.layout.inbox / entry.rel) and job is not None and job.failed_path:
                moves.quarantine_inbox(self.layout, entry.rel, job.failed_path)
            self.refused.pop(entry.rel, None)
            self.unclaimed.pop(entry.rel, None)
            return job
        except StoreError:
            raise
        except Exception:  # the last wall: remember it, say so, go on
            self.refused[entry.rel] = entry.identity
            self.log.exception("intake.refused", source=names.display(entry.rel), first_error=message)
            return None

    def _submit(
        self, entry: Entry, settled_by: str, refused: str | None = None, reason: str = Reason.not_regular_file
    ) -> Job | None:
        if not os.path.lexists(self.layout.inbox / entry.rel):
            return None  # taken since it was listed (in a fleet, by another host): nothing to submit
        sidecar_rel = names.sidecar_of(entry.rel)
        has_sidecar = entry.kind is not Kind.sidecar and os.path.lexists(self.layout.inbox / sidecar_rel)
        profile_name, profile = opt.profile_for(entry.rel, self.settings.profiles)
        problem: str | None = refused
        side: dict[str, Any] = {}
        if has_sidecar and not refused:
            try:
                side = self._read_sidecar(sidecar_rel)
            except opt.InvalidOptions as e:
                problem, reason = str(e), Reason.invalid_options
        options = opt.resolve(self.settings.job_defaults, profile, side)
        options["engine"] = resolve_engine(options["engine"])
        if problem is None and side:  # defaults and profiles were checked together at start
            try:
                opt.check_combination(options, names.display(sidecar_rel))
            except opt.InvalidOptions as e:
                problem, reason = str(e), Reason.invalid_options
        ticket, why = tickets.accept(self.layout.inbox, entry.rel, lambda j: self.lifecycle.store.job(j) is None)
        if why:  # a hand-over's ticket we cannot honour: a fresh id; its submitter will say so
            self.log.warning("intake.ticket_refused", source=names.display(entry.rel), reason=why)
        submitted = ev.JobSubmitted(
            job_id=ticket.job if ticket else self.new_id(),
            source=entry.rel,
            size=entry.identity.size,
            mtime_ns=entry.identity.mtime_ns,
            options=options,
            options_key=opt.options_key(options),
            sidecar=sidecar_rel if has_sidecar else None,
            settled_by=settled_by,
            ticket=ticket.nonce if ticket else None,
        )
        try:
            job = self.lifecycle.append(submitted.job_id, [submitted], expected_version=0)
        except (AlreadySubmitted, ConcurrencyError):  # another host noticed it (and its ticket) first, or holds it
            self.log.debug("intake.already_submitted", source=names.display(entry.rel))
            return None
        self._current = job
        self.submitted += 1
        tickets.discard(self.layout.inbox, entry.rel)  # recorded; while the file is in the inbox no one reuses it
        try:
            self.lifecycle.claim(job)
        except FileNotFoundError:  # gone between the look and the move, unless another host's claim took it
            if not self.lifecycle.reconcile_input(job):
                message = "the file was removed from the inbox as it was taken"
                return self.lifecycle.fail_now(job, "input_missing", message)
        except OSError:
            self.unclaimed[entry.rel] = job.id
            raise
        self.log.info(
            "job.submitted",
            job_id=job.id,
            source=names.display(entry.rel),
            size=entry.identity.size,
            profile=profile_name,
            sidecar=has_sidecar,
        )
        if problem is not None:
            job = self.lifecycle.fail_now(job, reason, problem)
        return job

    def _read_sidecar(self, rel: str) -> dict[str, Any]:
        path = self.layout.inbox / rel
        try:
            fd = open_regular(path)
        except (NotRegularFile, OSError) as e:
            raise opt.InvalidOptions(names.display(rel), f"sidecar cannot be read safely: {e}") from None
        with os.fdopen(fd, "rb") as fh:
            raw = fh.read(opt.SIDECAR_MAX_BYTES + 1)
        return opt.parse_sidecar(raw, names.display(rel))


def _kind(mode: int) -> str:
    from spool.fsio import kind_of

    return kind_of(mode)
