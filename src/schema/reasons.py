"""Why an attempt or a job failed: the ``reason`` in ``job.failed`` and in ``<name>.error.json``.

A closed set, each documented here and in docs/troubleshooting.md (a test
keeps them in step).  String-valued, so stored events stay plain JSON.
"""

from __future__ import annotations

import enum

INPUT_CONTENT = frozenset({"empty", "bad_input", "no_audio", "truncated", "corrupt"})


class Reason(enum.StrEnum):
    # the input itself: never retried
    empty = "empty"
    """The file has 0 bytes."""
    bad_input = "bad_input"
    """The decoder does not understand the file (not audio or video, or damaged from the start)."""
    no_audio = "no_audio"
    """A media container without an audio track (or with one holding no samples)."""
    truncated = "truncated"
    """The file's header promises more audio than the file holds (a copy cut short)."""
    corrupt = "corrupt"
    """Decoding started but the stream is damaged part-way."""
    unreachable_path = "unreachable_path"
    """A folder nested deeper than the scan goes, or a path longer than the system can open: nothing below
    it can be taken.  It is left where it is; ``failed/unreachable-<job>.error.json`` says so."""
    unreadable = "unreadable"
    """The input's permissions do not let the daemon's user read it (one attempt, not retried)."""
    not_regular_file = "not_regular_file"
    """A symlink, FIFO, device or socket: never followed or opened."""
    invalid_options = "invalid_options"
    """The sidecar ``<file>.json`` names an unknown option or a wrong value."""
    language_unsupported = "language_unsupported"
    """The model cannot transcribe the language asked for (an English-only ``.en`` model asked for another
    language): decided before decoding, not retried; ``spool retry`` runs it with the model configured then."""
    task_unsupported = "task_unsupported"
    """The model cannot do the task asked for (``translate`` on an English-only ``.en`` model): decided before
    decoding, not retried."""
    late_sidecar = "late_sidecar"
    """A sidecar ``<file>.json`` arrived after its audio had been taken: it was not applied (and is never
    applied to a later file of that name); it is in failed/ with this reason."""
    input_missing = "input_missing"
    """The input vanished from work/ (deleted by hand) before it could be transcribed."""
    internal_error = "internal_error"
    """spoolscribe met an unexpected error while handling this input (a bug): the exception's type and
    message are in error.json and the daemon log has its traceback.  Not retried; the daemon goes on."""
    # the attempt: retried with backoff until max_attempts
    worker_died = "worker_died"
    """The worker process crashed or was killed (signal or exit status recorded)."""
    hung = "hung"
    """The worker made no progress for ``stall_s``; its process tree was killed."""
    timeout = "timeout"
    """The job ran longer than its hard timeout (``timeout_base_s`` + ``timeout_factor`` x duration)."""
    probe_timeout = "probe_timeout"
    """Hashing and probing the input took longer than ``probe_timeout_s``."""
    engine_error = "engine_error"
    """The engine raised an error; the traceback is in the job log."""
    engine_unavailable = "engine_unavailable"
    """The engine or model could not be loaded three times in a row."""
    memory_limit = "memory_limit"
    """The worker's resident size passed ``worker_rss_limit_mb`` during the job; its tree was killed."""
    disk_full = "disk_full"
    """The disk filled while the outputs were written."""
    io_error = "io_error"
    """Another I/O error while reading the input or writing outputs."""
    # not the job's fault: retried at once, not counted as an attempt
    daemon_died = "daemon_died"
    """The daemon stopped or crashed while the job ran; it resumes from its last checkpoint."""
    interrupted = "interrupted"
    """The daemon was stopped (SIGTERM) while the job ran; it resumes at the next start."""
    input_changed = "input_changed"
    """The input was still being written; the job starts again from its final bytes."""
    unrecorded = "unrecorded"
    """The store refused to record how an attempt ended and the daemon could no longer keep it (it was
    restarted meanwhile, or the attempt's start was recorded without the daemon knowing); it runs again."""
    input_unsettled = "input_unsettled"
    """The input looked incomplete but was written to within ``recent_s``: it is looked at once more
    (a writer that paused longer than ``settle_s``) before it can be quarantined."""
    # by request
    cancelled = "cancelled"
    """Stopped by ``spool cancel``."""
