"""The worker process: loads one engine once, then transcribes job after job.

``python -m processor.worker --engine E --model M --models-dir D``

It never touches the database.  Protocol messages go to the original stdout;
file descriptor 1 is then pointed at stderr so that anything a library prints
lands in the job log instead of corrupting the protocol.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import queue
import sys
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from processor import languages, protocol
from processor.worker import hardware, outputs
from processor.worker.audio import BadInput
from processor.worker.engines import make_engine, resolve_engine
from processor.worker.engines.base import Engine
from processor.worker.lanes import Lanes
from spool import names
from spool.fsio import NotRegularFile, open_regular

VERSION = "0.1.0"
# Why an input could not even be opened: (reason, worth another attempt)
OPEN_ERRORS = {
    errno.EACCES: ("unreadable", False),
    errno.EPERM: ("unreadable", False),
    errno.ENOENT: ("input_missing", False),
}


class Channel:
    """The protocol pipe pair: sends from the main thread; a reader thread takes every line in.

    ``lanes`` messages are applied by the reader at once (the main thread is busy
    decoding when they come); everything else is queued for :meth:`receive`.
    """

    def __init__(self, lanes: Lanes | None = None) -> None:
        out_fd = os.dup(1)
        os.dup2(2, 1)
        self._out = os.fdopen(out_fd, "wb", buffering=0)
        self._in = sys.stdin.buffer
        self.lanes = lanes or Lanes()
        self.job: str | None = None  # the job a lanes message may change (the reader's own)
        self._queue: queue.Queue[protocol.ToWorker | None] = queue.Queue()
        threading.Thread(target=self._read, name="protocol-in", daemon=True).start()

    def send(self, msg: protocol.FromWorker) -> None:
        self._out.write(protocol.encode(msg))

    def _read(self) -> None:
        while line := self._in.readline(protocol.MAX_LINE):
            msg = protocol.decode(line)
            if msg is None:
                continue
            if msg["type"] == "job":  # in order: a lanes message after it is about this job
                self.job = msg["job"]
                self.lanes.set(msg["lanes"])
            elif msg["type"] == "lanes":
                if msg["job"] == self.job:
                    self.lanes.set(msg["lanes"])
                continue
            self._queue.put(msg)
        self._queue.put(None)

    def receive(self) -> protocol.ToWorker | None:
        """The next message; None at end of input (the daemon went away)."""
        return self._queue.get()


def log(message: str) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    print(f"{stamp} worker[{os.getpid()}] {message}", file=sys.stderr, flush=True)


def sha256_of(fh: BinaryIO) -> str:
    fh.seek(0)
    digest = hashlib.sha256()
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


class ProgressSender:
    """Forwards engine callbacks to the daemon, at most one progress line per ``min_s``."""

    def __init__(self, channel: Channel, job: str, duration_s: float, min_s: float = 0.2) -> None:
        self._channel, self._job, self._duration = channel, job, duration_s
        self._min_s, self._last = min_s, 0.0

    def progress(self, position_s: float) -> None:
        now = time.monotonic()
        if now - self._last >= self._min_s:
            self._last = now
            self._channel.send(
                {"type": "progress", "job": self._job, "position_s": round(position_s, 3), "duration_s": self._duration}
            )

    def segments(self, segments: list[dict[str, Any]], upto_s: float) -> None:
        self._channel.send({"type": "segments", "job": self._job, "segments": segments, "upto_s": round(upto_s, 3)})


def run_job(engine: Engine, channel: Channel, msg: protocol.JobMsg, facts: dict[str, Any] | None = None) -> None:
    """One job; ``facts`` is what the engine's load said (multilingual, device, compute type)."""
    job = msg["job"]
    facts = facts or {}
    log(f"job {job} attempt {msg.get('attempt')}: {msg['input']!r} resume_from={msg.get('resume_from', 0)}")
    refused = languages.unsupported(msg["options"], engine.model, facts.get("multilingual"))
    if refused is not None:  # before the input is even opened: nothing is decoded for a request we cannot serve
        log(f"job {job}: {refused[1]}")
        channel.send(protocol.error(job, refused[0], refused[1], retryable=False))
        return
    try:
        fh = os.fdopen(open_regular(Path(msg["input"])), "rb")
    except NotRegularFile as e:
        channel.send(protocol.error(job, "not_regular_file", str(e), retryable=False))
        return
    except OSError as e:  # one attempt is enough to know: not a crash to retry three times
        reason, retryable = OPEN_ERRORS.get(e.errno or 0, ("io_error", True))
        log(f"job {job}: cannot open the input: {e}")
        message = f"the input cannot be opened: {e.strerror or e}"
        channel.send(protocol.error(job, reason, message, retryable=retryable))
        return
    with fh:
        _run_open(engine, channel, msg, fh, facts)


def _run_open(engine: Engine, channel: Channel, msg: protocol.JobMsg, fh: BinaryIO, facts: dict[str, Any]) -> None:
    job = msg["job"]
    try:
        duration = engine.probe(fh)
        sha = sha256_of(fh)
        channel.send({"type": "probe", "job": job, "sha256": sha, "duration_s": round(duration, 3)})
        reply = channel.receive()
        if reply is None or reply["type"] != "go":
            log(f"job {job}: {reply['type'] if reply else 'no reply'}; not transcribing")
            return
        if hasattr(engine, "attempt"):  # the scripted test engine misbehaves per attempt
            engine.attempt = int(msg.get("total_attempt", msg.get("attempt", 1)))
        started = time.monotonic()
        sender = ProgressSender(channel, job, duration)
        resume = float(msg.get("resume_from", 0.0))
        transcript = engine.transcribe(
            fh,
            duration,
            msg["options"],
            resume_from=resume,
            on_progress=sender.progress,
            on_segments=sender.segments,
        )
        elapsed = time.monotonic() - started
        segments = [s for s in msg.get("prior_segments", []) if s["end"] <= resume + 1e-3] + transcript.segments
        audio_s = max(duration, segments[-1]["end"] if segments else 0.0)
        manifest = _manifest(engine, msg, sha, transcript.language, audio_s, elapsed, resume, transcript.info)
        manifest.update(detection_facts(msg["options"], transcript.info, facts))
        result = {
            "text": outputs.text_of(segments),
            "segments": [{"id": i, **s} for i, s in enumerate(segments)],
            "language": transcript.language,
            "spoolscribe": manifest,
        }
        names = outputs.render(result, msg["options"]["formats"], Path(msg["stage"]))
        if sha256_of(fh) != sha:
            channel.send(
                protocol.error(job, "input_changed", "the input changed while it was transcribed", retryable=True)
            )
            return
        log(f"job {job}: done, {audio_s:.1f} s of audio in {elapsed:.1f} s")  # before the result: its log is ours
        channel.send(protocol.result(job, names, manifest))
    except BadInput as e:
        log(f"job {job}: bad input: {e}")
        channel.send(protocol.error(job, e.reason, str(e), retryable=False))
    except OSError as e:
        log(f"job {job}: {traceback.format_exc()}")
        reason = "disk_full" if e.errno == errno.ENOSPC else "io_error"
        channel.send(protocol.error(job, reason, str(e), retryable=True))
    except Exception as e:  # noqa: BLE001 - any engine failure is reported, then retried
        log(f"job {job}: engine failed:\n{traceback.format_exc()}")
        channel.send(protocol.error(job, "engine_error", f"{type(e).__name__}: {e}", retryable=True))


def _manifest(
    engine: Engine,
    msg: protocol.JobMsg,
    sha: str,
    language: str,
    audio_s: float,
    elapsed: float,
    resume: float,
    info: dict[str, Any],
) -> dict[str, Any]:
    return {
        "job": msg["job"],
        "source": names.display(msg.get("source", "")),
        "sha256": sha,
        "engine": engine.name,
        "model": engine.model,
        "options": msg["options"],
        "language": language,
        "duration_s": round(audio_s, 3),
        "elapsed_s": round(elapsed, 3),
        "x_real_time": round(audio_s / elapsed, 2) if elapsed > 0 else None,
        "resumed_from_s": resume,
        "attempt": msg.get("attempt"),
        "engine_info": info,
        "version": VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def detection_facts(options: dict[str, Any], info: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    """What the manifest says about language and hardware: detected or asked, with what confidence, where."""
    detected = options.get("language") is None and facts.get("multilingual") is not False  # .en: always en
    return {
        "language_detected": detected,
        "language_probability": info.get("language_probability") if detected else None,
        "device": facts.get("device"),
        "compute_type": facts.get("compute_type"),
    }


PR_SET_PDEATHSIG = 1


def die_with_daemon() -> None:
    """Linux: the kernel kills this worker when its daemon dies, however (kill -9 included).

    A hung worker whose daemon was killed would otherwise live on, reparented to init, holding
    memory and CPU while its job runs again elsewhere.  (Elsewhere, and for what it spawned, the
    daemon's next start kills what its registry of workers names.)
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal as signals

    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signals.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    expected = os.environ.get("SPOOLSCRIBE_DAEMON_PID", "")
    if expected.isdigit() and os.getppid() != int(expected):
        os._exit(70)  # the daemon died before the request took effect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spoolscribe-worker")
    parser.add_argument("--engine", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--models-dir", required=True, type=Path)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compute-type", dest="compute_type", default="auto")
    parser.add_argument("--lanes", type=int, default=1, help="most windows of one job decoded at once")
    parser.add_argument("--batch", type=int, default=1, help="30 s pieces decoded in one batch (faster-whisper)")
    args = parser.parse_args(argv)
    die_with_daemon()
    channel = Channel(Lanes(args.lanes))
    started = time.monotonic()
    try:
        engine_name = resolve_engine(args.engine)
        hw = hardware.select(engine_name, args.device, args.compute_type, hardware.probe(engine_name))
        engine = make_engine(
            engine_name, args.model, args.models_dir, args.threads, hw, os.environ, channel.lanes, args.batch
        )
        info = engine.load()
    except Exception as e:  # noqa: BLE001 - reported to the daemon, which fails the job clearly
        log(f"engine {args.engine} model {args.model} failed to load:\n{traceback.format_exc()}")
        channel.send(protocol.fatal(f"{args.engine}/{args.model} failed to load: {e}"))
        return 2
    load_s = time.monotonic() - started
    log(f"ready: {engine.name} {engine.model} in {load_s:.2f} s {info}")
    channel.send(
        {
            "type": "ready",
            "pid": os.getpid(),
            "engine": engine.name,
            "model": engine.model,
            "load_s": round(load_s, 3),
            "info": info,
        }
    )
    while True:
        msg = channel.receive()
        if msg is None or msg["type"] == "shutdown":
            return 0
        if msg["type"] == "job":
            run_job(engine, channel, msg, info)
            engine.between_jobs()
            channel.send(protocol.idle())


if __name__ == "__main__":
    sys.exit(main())
