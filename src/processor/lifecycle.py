"""The I/O half of a job's life: append the event, then do the move it announces.

Every method follows DESIGN.md's order (event first, filesystem after) and is
idempotent, because startup recovery calls the same methods to finish
whatever a crash interrupted.  Decisions come from :mod:`processor.policy`.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ground.times import iso
from processor import policy
from processor.clock import Clock
from processor.config import Settings
from processor.options import writer_options
from processor.worker import outputs
from schema import events as ev
from schema.errors import StaleAttempt
from schema.jobs import Job, JobState
from schema.reasons import INPUT_CONTENT, Reason
from schema.sqlite_store import out_key
from schema.store import ANY, EventStore
from spool import faults, moves, names
from spool.layout import Layout

# The attempt whose appends are being made (fencing); set by Lifecycle.attempt().
_ATTEMPT: contextvars.ContextVar[str | None] = contextvars.ContextVar("spool_attempt", default=None)


class Lifecycle:
    def __init__(self, store: EventStore, layout: Layout, settings: Settings, clock: Clock, log: Any) -> None:
        self.store = store
        self.layout = layout
        self.settings = settings
        self.clock = clock
        self.log = log

    @contextlib.contextmanager
    def attempt(self, worker: str | None) -> Iterator[None]:
        """Fence every append made inside: refused (StaleAttempt) once the job left ``worker`` (None: no fence)."""
        token = _ATTEMPT.set(worker or None)
        try:
            yield
        finally:
            _ATTEMPT.reset(token)

    def append(
        self, job_id: str, events: list[ev.Event], key: str | None = None, expected_version: int | None = None
    ) -> Job:
        """``expected_version``: only if nobody changed the job since it was judged (else ConcurrencyError)."""
        faults.point("append")
        self.store.append(
            ev.job_stream(job_id),
            events,
            idempotency_key=key,
            attempt_of=_ATTEMPT.get(),
            expected_version=ANY if expected_version is None else expected_version,
        )
        job = self.store.job(job_id)
        assert job is not None
        return job

    # --- intake ---------------------------------------------------------------

    def submit(self, submitted: ev.JobSubmitted) -> Job:
        job = self.append(submitted.job_id, [submitted])
        self.claim(job)
        return job

    def claim(self, job: Job) -> None:
        faults.point("claim")
        moves.claim(self.layout, job.id, job.source, job.sidecar, keep_name=job.holds_inbox_name)

    def finish_files(self, job: Job) -> None:
        """The moves a terminal job's event announced, if something stopped them (a lost acknowledgement)."""
        if not self.layout.job_dir(job.id).exists():
            return
        if job.state is JobState.succeeded:
            moves.finish(self.layout, job.id, job.source, job.done_path)
        elif job.state in (JobState.failed, JobState.cancelled):
            self.quarantine(job)

    # --- failure --------------------------------------------------------------

    def fail(
        self,
        job: Job,
        reason: str,
        message: str,
        *,
        retryable: bool,
        exit_code: int | None = None,
        signal: int | None = None,
        prefix: list[ev.Event] | None = None,
        judged: bool = False,
    ) -> Job:
        """Record a failed attempt; schedule the retry or quarantine the input.

        ``judged``: the failure was concluded from ``job`` as read (an orphan sweep); if the job
        moved on meanwhile (another host recorded something), ConcurrencyError and nothing written.
        """
        decision = policy.decide_retry(
            attempts=job.attempts,
            total_attempts=job.total_attempts - job.shutdowns,
            max_attempts=self.settings.max_attempts,
            retryable=retryable,
            reason=reason,
            base_s=self.settings.retry_backoff_s,
            cap_s=self.settings.retry_backoff_max_s,
            job_id=job.id,
        )
        failed_path = (
            moves.free_path(self.layout.failed, job.source, reserve=moves.FAILED_SUFFIX_BYTES)
            if decision.final
            else None
        )
        failure = ev.JobFailed(
            reason=reason,
            message=message,
            retryable=retryable,
            final=decision.final,
            attempt=job.attempts,
            exit_code=exit_code,
            signal=signal,
            failed_path=failed_path,
            counted=decision.counted,
        )
        batch: list[ev.Event] = [*(prefix or []), failure]
        if not decision.final:
            batch.append(
                ev.JobRetryScheduled(
                    attempt=job.attempts + (1 if decision.counted else 0),
                    not_before=policy.not_before(self.clock.wall(), decision.delay_s),
                    delay_s=decision.delay_s,
                )
            )
        job = self.append(
            job.id, batch, key=f"{job.id}:v{job.version}:failed", expected_version=job.version if judged else None
        )
        self.log.warning(
            "job.failed",
            job_id=job.id,
            reason=reason,
            message=message,
            final=decision.final,
            attempt=failure.attempt,
            retry_in_s=None if decision.final else decision.delay_s,
        )
        if decision.final:
            self.quarantine(job)
        return job

    def adopt(self, job: Job, worker: str, host: str, instance: str) -> Job:
        """Take over a publishing job whose daemon is gone; ConcurrencyError if it moved on meanwhile."""
        adopted = ev.JobAdopted(worker=worker, host=host, instance=instance, from_instance=job.instance)
        job = self.append(job.id, [adopted], expected_version=job.version)
        self.log.warning("job.adopted", job_id=job.id, from_instance=adopted.from_instance)
        return job

    def quarantine(self, job: Job) -> None:
        """Input + error.json into failed/ (a terminal failed or cancelled job)."""
        assert job.failed_path is not None
        doc = moves.error_doc(
            reason=job.reason or "failed",
            message=job.message or "",
            job=job.id,
            attempts=job.total_attempts,
            source=names.display(job.source),
            exit_code=job.exit_code,
            signal=job.signal,
            failed_at=job.finished_at,
            log=str(self.layout.job_log(job.id)) if self.layout.job_log(job.id).exists() else None,
        )
        moves.quarantine(self.layout, job.id, job.source, job.failed_path, doc)

    def fail_now(self, job: Job, reason: str, message: str) -> Job:
        """A failure no retry can fix, decided by the daemon itself (bad options, missing input)."""
        return self.fail(job, reason, message, retryable=False)

    # --- cancel ---------------------------------------------------------------

    def cancel(self, job: Job) -> Job:
        failed_path = moves.free_path(self.layout.failed, job.source, reserve=moves.FAILED_SUFFIX_BYTES)
        job = self.append(job.id, [ev.JobCancelled(failed_path=failed_path)], key=f"{job.id}:v{job.version}:cancelled")
        self.log.info("job.cancelled", job_id=job.id)
        self.quarantine(job)
        return job

    # --- success --------------------------------------------------------------

    def choose_out_stem(self, job: Job) -> str:
        candidate = names.stem(job.source)

        def taken(stem: str) -> bool:
            if any(o.id != job.id for o in self.store.out_key_owners(out_key(stem) or b"")):
                return True
            return moves.outbox_taken(self.layout, stem)

        return names.choose_stem(candidate, taken)

    def transcribed(
        self, job: Job, staged: list[str], language: str, duration_s: float, elapsed_s: float, *, publish: bool = True
    ) -> Job:
        event = ev.JobTranscribed(
            out_stem=self.choose_out_stem(job),
            outputs=staged,
            language=language,
            duration_s=duration_s,
            elapsed_s=elapsed_s,
        )
        job = self.append(job.id, [event], key=f"{job.id}:a{job.total_attempts}:transcribed")
        return self.publish(job) if publish else job

    def quiet_wait(self, job: Job) -> float:
        """Seconds until the input has been quiet for ``recent_s``.

        A renamed file is complete by the producer's word and publishes at once; any other may
        belong to a writer that merely paused, so its transcript waits until the file is
        ``recent_s`` old (an old file waits not at all; DESIGN: a job whose input goes on
        changing starts again from the final bytes).
        """
        if job.settled_by in ("rename", "special"):
            return 0.0
        try:
            mtime = os.stat(self.input_path(job)).st_mtime
        except FileNotFoundError:
            return 0.0
        return max(0.0, self.settings.recent_s - (self.clock.wall().timestamp() - mtime))

    def publish_when_quiet(self, job: Job) -> Job:
        """Publish a held job, or start it again if its input moved on while it waited."""
        changed = self.input_changed(job)
        return changed if changed is not None else self.publish(job)

    def publish(self, job: Job) -> Job:
        """Staged outputs into outbox/, then ``job.succeeded``, then the input to done/.

        Under a fenced attempt the job is read afresh first: a daemon back from a
        network cut must not start moving files of a publication another adopted.
        (Were both to move them, they would converge: the names are the job's own.)
        """
        assert job.state is JobState.publishing and job.out_stem is not None
        fence = _ATTEMPT.get()
        if fence is not None:
            now = self.store.job(job.id)
            if now is None or now.worker != fence or now.state is not JobState.publishing:
                raise StaleAttempt(job.id, fence, f"{now.state.value} on {now.worker}" if now else "absent")
        if job.staged:
            faults.point("rename")
            published = moves.publish(self.layout, job.id, job.out_stem, job.staged)
        else:  # a duplicate reusing the original's files in place
            original = self.store.job(job.duplicate_of or "")
            published = list(original.outputs) if original else []
        faults.point("dir_fsync")
        done_rel = moves.free_path(self.layout.done, job.source) if self.settings.done_policy == "keep" else None
        faults.point("completion")
        job = self.append(job.id, [ev.JobSucceeded(outputs=published, done_path=done_rel)], key=f"{job.id}:succeeded")
        moves.finish(self.layout, job.id, job.source, job.done_path)
        self.log.info(
            "job.succeeded",
            job_id=job.id,
            outputs=[names.display(p) for p in published],
            duration_s=job.duration_s,
            elapsed_s=job.elapsed_s,
            duplicate_of=job.duplicate_of,
        )
        return job

    def duplicate(self, job: Job, original: Job) -> Job:
        """Reuse a finished job's transcript: no engine run."""
        formats = job.options["formats"]
        stem = names.stem(job.source)
        in_place = (
            original.out_stem is not None
            and names.collision_key(stem) == names.collision_key(original.out_stem)
            and set(formats) <= {p.rsplit(".", 1)[-1] for p in original.outputs}
            and all((self.layout.outbox / p).exists() for p in original.outputs)
            and writer_options(job.options) == writer_options(original.options)  # same subtitle shape
        )
        if in_place:
            assert original.out_stem is not None
            event = ev.JobDuplicate(of_job=original.id, out_stem=original.out_stem, outputs=[])
        else:
            result = self.result_from_events(original, job)
            staged = outputs.render(result, formats, self.layout.staging(job.id))
            event = ev.JobDuplicate(of_job=original.id, out_stem=self.choose_out_stem(job), outputs=staged)
        job = self.append(job.id, [event], key=f"{job.id}:duplicate")
        self.log.info("job.duplicate", job_id=job.id, of_job=original.id, in_place=in_place)
        return self.publish(job)

    def segments_of(self, job_id: str) -> list[dict[str, Any]]:
        """Checkpointed segments of the job's current content, in order."""
        segments: list[dict[str, Any]] = []
        for rec in self.store.read(ev.job_stream(job_id)):
            if isinstance(rec.event, ev.JobInputChanged):
                segments = []
            elif isinstance(rec.event, ev.JobSegments):
                segments.extend(rec.event.segments)
        return segments

    def result_from_events(self, original: Job, job: Job) -> dict[str, Any]:
        segments = self.segments_of(original.id)
        manifest = {
            "job": job.id,
            "source": names.display(job.source),
            "sha256": job.sha256,
            "duplicate_of": original.id,
            "engine": original.engine,
            "model": original.model,
            "options": job.options,
            "language": original.language,
            "duration_s": original.duration_s,
            "elapsed_s": 0.0,
            "created_at": iso(self.clock.wall()),
        }
        return {
            "text": outputs.text_of(segments),
            "segments": [{"id": i, **s} for i, s in enumerate(segments)],
            "language": original.language or "en",
            "spoolscribe": manifest,
        }

    # --- input identity -----------------------------------------------------

    def input_path(self, job: Job) -> Path:
        return moves.work_input(self.layout, job.id, job.source)

    def input_changed(self, job: Job, *, force: bool = False) -> Job | None:
        """If the input moved on since it was submitted, start over from its final bytes.

        Returns the updated job, or None when the input is unchanged (and not
        ``force``: the worker saw different bytes under the same size and mtime).
        """
        followed = job.holds_inbox_name and moves.follow_name(self.layout, job.id, job.source)
        try:
            st = os.stat(self.input_path(job))
        except FileNotFoundError:
            return self.fail_now(job, "input_missing", "the input vanished from work/ while it was processed")
        if not (force or followed) and (st.st_size, st.st_mtime_ns) == (job.size, job.mtime_ns):
            return None
        wait = policy.not_before(self.clock.wall(), max(self.settings.settle_s, 0.5))
        job = self.append(job.id, [ev.JobInputChanged(size=st.st_size, mtime_ns=st.st_mtime_ns, not_before=wait)])
        self.log.warning("job.input_changed", job_id=job.id, size=st.st_size)
        return job

    def unsettled_retry(self, job: Job, reason: str, message: str) -> Job | None:
        """An input-content failure of a file still being written: restart, look again later, or None.

        None means the failure stands (the file is settled, or it had its second look already).
        """
        if reason not in INPUT_CONTENT:
            return None
        changed = self.input_changed(job)
        if changed is not None:
            return changed
        try:
            mtime = os.stat(self.input_path(job)).st_mtime
        except FileNotFoundError:
            return None
        age = self.clock.wall().timestamp() - mtime
        if age >= self.settings.recent_s or self._looked_again(job):
            return None
        wait = max(self.settings.settle_s, self.settings.recent_s - age)
        failed = ev.JobFailed(
            reason=Reason.input_unsettled,
            message=f"{message} - but the file was written {age:.1f} s ago; looking again in {wait:.0f} s",
            retryable=True,
            final=False,
            attempt=job.attempts,
            counted=False,
        )
        retry = ev.JobRetryScheduled(
            attempt=job.attempts, not_before=policy.not_before(self.clock.wall(), wait), delay_s=wait
        )
        self.log.warning("job.input_unsettled", job_id=job.id, reason=reason, age_s=round(age, 1))
        return self.append(job.id, [failed, retry])

    def _looked_again(self, job: Job) -> bool:
        """Whether these very bytes were already given their second look (since the input last changed)."""
        looked = False
        for rec in self.store.read(ev.job_stream(job.id)):
            if isinstance(rec.event, ev.JobInputChanged):
                looked = False
            elif isinstance(rec.event, ev.JobFailed) and rec.event.reason == Reason.input_unsettled:
                looked = True
        return looked

    def reconcile_input(self, job: Job) -> bool:
        """Make sure a live job's input is in work/<job>/; finish an interrupted claim or requeue."""
        dst = self.input_path(job)
        if os.path.lexists(dst):
            return True
        src = self.layout.inbox / job.source
        try:
            st = os.lstat(src)
            if (st.st_size, st.st_mtime_ns) == (job.size, job.mtime_ns) or job.holds_inbox_name:
                moves.claim(self.layout, job.id, job.source, job.sidecar, keep_name=job.holds_inbox_name)
                return True
        except FileNotFoundError:
            if os.path.lexists(dst):  # another fleet host's claim renamed it between our two looks
                return True
        return bool(job.requeued_from and moves.requeue(self.layout, job.id, job.source, job.requeued_from))
