"""A job's transcripts, read only from inside ``outbox/``.

The path comes from the job's record (``job.succeeded`` lists outbox-relative
names), never from the request: a request names a job id (hex) and a format
from a closed set.  Even so each path is checked: no ``..`` or absolute part,
its real path inside the outbox's real path, the file itself opened without
following a symlink and only if regular.  ``tsv`` is served from the outbox
when the job wrote it, else made from the ``.json``'s segments in the format of
the Whisper writers (``start<TAB>end<TAB>text``, milliseconds).
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from schema.jobs import Job, JobState
from spool import names
from web.errors import ApiError
from web.face import Face

FORMATS = ("txt", "srt", "vtt", "tsv", "json")
MEDIA = {
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
    "json": "application/json",
}
MAX_READ = 256 << 20


def _rel_of(job: Job, fmt: str) -> str | None:
    return next((o for o in job.outputs if o.endswith("." + fmt)), None)


def read_output(face: Face, job: Job, fmt: str) -> tuple[bytes, str]:
    """``(content, file name)`` of the job's ``fmt`` output; 404/409 errors with their codes."""
    if fmt not in FORMATS:
        raise ApiError(404, "unknown_format", f"no format {fmt!r} (formats: {', '.join(FORMATS)})")
    if job.state is not JobState.succeeded:
        raise ApiError(409, "not_finished", f"job {job.id} is {job.state.value}; outputs exist once it succeeded")
    rel = _rel_of(job, fmt)
    if rel is None and fmt == "tsv" and _rel_of(job, "json"):
        data, name = read_output(face, job, "json")
        return tsv_of(json.loads(data)), name[: -len(".json")] + ".tsv"
    if rel is None:
        raise ApiError(
            404, "no_output", f"job {job.id} has no {fmt} output (it wrote {', '.join(job.outputs) or 'none'})"
        )
    return _read_inside(face, rel), names.display(os.path.basename(rel))


def _read_inside(face: Face, rel: str) -> bytes:
    outbox = face.layout.outbox
    if not names.is_safe_relative(rel):
        raise ApiError(404, "no_output", "the output's recorded path is not inside outbox/")
    base = os.path.realpath(outbox)
    full = os.path.realpath(os.path.join(outbox, rel))
    if os.path.commonpath([base, full]) != base or full == base:
        raise ApiError(404, "no_output", "the output's path leads outside outbox/")
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ApiError(404, "output_gone", "the output is no longer in outbox/") from None
    except OSError as e:
        raise ApiError(404, "no_output", f"the output cannot be read ({e.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ApiError(404, "no_output", "the output is not a regular file")
        return fh.read(MAX_READ)


def tsv_of(doc: dict[str, Any]) -> bytes:
    lines = ["start\tend\ttext"]
    for seg in doc.get("segments") or []:
        text = str(seg.get("text", "")).strip().replace("\t", " ")
        lines.append(f"{round(1000 * float(seg['start']))}\t{round(1000 * float(seg['end']))}\t{text}")
    return ("\n".join(lines) + "\n").encode()


def transcript(face: Face, job: Job) -> dict[str, Any]:
    """The job's ``.json`` output as a dictionary (text, segments, language, the spoolscribe manifest)."""
    data, _ = read_output(face, job, "json")
    doc = json.loads(data)
    return doc if isinstance(doc, dict) else {}


def verbose_json(doc: dict[str, Any], job: Job, task: str) -> dict[str, Any]:
    """OpenAI's ``verbose_json``: task, language, duration, text, segments (and words when timed)."""
    segments = []
    for i, seg in enumerate(doc.get("segments") or []):
        segments.append(
            {
                "id": i,
                "seek": seg.get("seek", 0),
                "start": seg.get("start"),
                "end": seg.get("end"),
                "text": seg.get("text", ""),
                "tokens": seg.get("tokens", []),
                "temperature": seg.get("temperature", 0.0),
                "avg_logprob": seg.get("avg_logprob", 0.0),
                "compression_ratio": seg.get("compression_ratio", 0.0),
                "no_speech_prob": seg.get("no_speech_prob", 0.0),
            }
        )
    words = [w for seg in doc.get("segments") or [] for w in seg.get("words") or []]
    out: dict[str, Any] = {
        "task": task,
        "language": doc.get("language") or job.language,
        "duration": job.duration_s,
        "text": str(doc.get("text", "")).strip(),
        "segments": segments,
    }
    if words:
        out["words"] = [{"word": w.get("word"), "start": w.get("start"), "end": w.get("end")} for w in words]
    return out
