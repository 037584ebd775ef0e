"""The JSON-lines protocol between the daemon and its workers, every message typed.

The worker never touches the database: it reads one JSON object per line on
stdin and writes one per line on stdout; its stderr is the job log.

daemon -> worker: ``job``, ``go``, ``skip``, ``lanes``, ``shutdown``
worker -> daemon: ``ready``, ``fatal``, ``probe``, ``progress``, ``segments``, ``result``, ``error``, ``idle``

Each message is a ``TypedDict`` (what mypy checks at every sender and reader) and
is built by one function here, so a field is spelled once.  :func:`decode` checks
a line against its type's fields at the edge: a line that is not a whole, well
typed message is dropped there (stray output is not fatal), never half-read deep
in the daemon.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypedDict, get_type_hints

MAX_LINE = 64 * 1024 * 1024  # a segments message of a very long file still fits

# --- daemon -> worker --------------------------------------------------------------------


class JobMsg(TypedDict):
    type: Literal["job"]
    job: str
    attempt: int
    total_attempt: int
    input: str
    stage: str  # the attempt's staging folder: one per attempt, so attempts never cross-talk
    options: dict[str, Any]
    resume_from: float
    prior_segments: list[dict[str, Any]]
    source: str
    lanes: int  # windows of this job the worker may decode at once (processor.worker.lanes)


class LanesMsg(TypedDict):
    """The cores free for this job changed while it runs: decode this many windows at once from now."""

    type: Literal["lanes"]
    job: str
    lanes: int


class GoMsg(TypedDict):
    type: Literal["go"]


class SkipMsg(TypedDict):
    type: Literal["skip"]


class ShutdownMsg(TypedDict):
    type: Literal["shutdown"]


# --- worker -> daemon --------------------------------------------------------------------


class ReadyMsg(TypedDict):
    type: Literal["ready"]
    pid: int
    engine: str
    model: str
    load_s: float
    info: dict[str, Any]


class FatalMsg(TypedDict):
    type: Literal["fatal"]
    message: str


class IdleMsg(TypedDict):
    type: Literal["idle"]


class ProbeMsg(TypedDict):
    type: Literal["probe"]
    job: str
    sha256: str
    duration_s: float


class ProgressMsg(TypedDict):
    type: Literal["progress"]
    job: str
    position_s: float
    duration_s: float


class SegmentsMsg(TypedDict):
    type: Literal["segments"]
    job: str
    segments: list[dict[str, Any]]
    upto_s: float


class ResultMsg(TypedDict):
    type: Literal["result"]
    job: str
    outputs: list[str]
    language: str
    duration_s: float
    elapsed_s: float
    sha256: str


class ErrorMsg(TypedDict):
    type: Literal["error"]
    job: str
    reason: str
    message: str
    retryable: bool


ToWorker = JobMsg | GoMsg | SkipMsg | LanesMsg | ShutdownMsg
JobReport = ProbeMsg | ProgressMsg | SegmentsMsg | ResultMsg | ErrorMsg  # about one job: carry its id
FromWorker = ReadyMsg | FatalMsg | IdleMsg | JobReport
Message = ToWorker | FromWorker

_TYPES: dict[str, type] = {
    "job": JobMsg,
    "go": GoMsg,
    "skip": SkipMsg,
    "lanes": LanesMsg,
    "shutdown": ShutdownMsg,
    "ready": ReadyMsg,
    "fatal": FatalMsg,
    "idle": IdleMsg,
    "probe": ProbeMsg,
    "progress": ProgressMsg,
    "segments": SegmentsMsg,
    "result": ResultMsg,
    "error": ErrorMsg,
}
_PLAIN = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}


def _origin(hint: Any) -> Any:
    return getattr(hint, "__origin__", hint)


def _fits(value: Any, hint: Any) -> bool:
    kind = _origin(hint)
    if kind is Literal:
        return value in hint.__args__
    if kind in (list, dict):
        return isinstance(value, kind)
    if kind in _PLAIN:
        if isinstance(value, bool) and kind is not bool:
            return False
        return isinstance(value, _PLAIN[kind])
    return True


_FIELDS = {name: get_type_hints(cls) for name, cls in _TYPES.items()}


# --- one builder per message: each field spelled once -------------------------------------


def error(job: str, reason: str, message: str, *, retryable: bool) -> ErrorMsg:
    return {"type": "error", "job": job, "reason": reason, "message": message[:500], "retryable": retryable}


def result(job: str, outputs: list[str], manifest: dict[str, Any]) -> ResultMsg:
    """What the daemon records of a finished transcript: the manifest's own numbers, not a second copy."""
    return {
        "type": "result",
        "job": job,
        "outputs": outputs,
        "language": str(manifest["language"]),
        "duration_s": float(manifest["duration_s"]),
        "elapsed_s": float(manifest["elapsed_s"]),
        "sha256": str(manifest["sha256"]),
    }


def fatal(message: str) -> FatalMsg:
    return {"type": "fatal", "message": message[:500]}


def idle() -> IdleMsg:
    return {"type": "idle"}


def go() -> GoMsg:
    return {"type": "go"}


def skip() -> SkipMsg:
    return {"type": "skip"}


def lanes(job: str, n: int) -> LanesMsg:
    return {"type": "lanes", "job": job, "lanes": n}


def shutdown() -> ShutdownMsg:
    return {"type": "shutdown"}


# --- the wire -------------------------------------------------------------------------------


def encode(msg: Message) -> bytes:
    return (json.dumps(msg, separators=(",", ":"), ensure_ascii=True) + "\n").encode("ascii")


def decode(line: bytes) -> Any:
    """One whole, well-typed message, or None for a line that is not one (stray output is not fatal).

    Typed ``Any`` because the direction decides which union it belongs to: the reader narrows it.
    """
    line = line.strip()
    if not line.startswith(b"{"):
        return None
    try:
        msg = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(msg, dict):
        return None
    fields = _FIELDS.get(msg.get("type"))  # type: ignore[arg-type]
    if fields is None:
        return None
    if any(key not in msg or not _fits(msg[key], hint) for key, hint in fields.items()):
        return None
    return msg
