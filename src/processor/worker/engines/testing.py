"""A deterministic engine for fast orchestration and fault tests (``engine = "test"``).

An input that starts with ``SPOOLTEST`` followed by a JSON script says what the
"transcription" does; anything else is probed and decoded for real with PyAV
(so bad inputs are classified exactly as the real engines classify them) and
yields one segment per second of audio.  A script::

    SPOOLTEST {"duration": 6, "segments": 3, "delay_s": 0.2,
               "attempts": {"1": {"mode": "crash", "after_segments": 1}}}

Modes (per attempt, default ``ok``): ``ok``, ``crash`` (SIGSEGV), ``exit``
(``code``), ``hang`` (silent), ``busy`` (spins), ``stop`` (SIGSTOP itself),
``ignore_term`` (SIG_IGN on SIGTERM, inherited, then hangs), ``error``
(retryable), ``bad_input``, ``hog`` (holds ``mb`` MB), ``grandchild`` (leaves a descendant behind:
``pattern`` plain | setsid | double_fork | orphan, then hangs).  Descendants
carry ``SPOOLTEST_MARKER`` in their environment so tests can find survivors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, BinaryIO

from processor.worker import audio
from processor.worker.audio import BadInput
from processor.worker.engines.base import OnProgress, OnSegments, Transcript

MAGIC = b"SPOOLTEST"


def read_script(fh: BinaryIO) -> dict[str, Any] | None:
    fh.seek(0)
    head = fh.read(64 * 1024)
    if not head.startswith(MAGIC):
        return None
    try:  # the script is the first line; whatever follows is payload (size for hashing, writers)
        script = json.loads(head[len(MAGIC) :].split(b"\n", 1)[0].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(f"test script is not JSON: {e}") from None
    return script if isinstance(script, dict) else {}


class TestEngine:
    name = "test"
    __test__ = False  # not a pytest class

    def __init__(self, model: str = "test", model_path: str = "", threads: int = 0) -> None:
        self.model = model
        self.attempt = 1

    def load(self) -> dict[str, Any]:
        delay = float(os.environ.get("SPOOLTEST_LOAD_DELAY", "0") or 0)
        if delay:
            time.sleep(delay)
        return {"deterministic": True}

    def probe(self, fh: BinaryIO) -> float:
        script = read_script(fh)
        if script is None:
            return audio.probe(fh)
        if "probe_hang" in script:
            time.sleep(3600)
        return float(script.get("duration", 3.0))

    def transcribe(
        self,
        fh: BinaryIO,
        duration_s: float,
        options: dict[str, Any],
        *,
        resume_from: float,
        on_progress: OnProgress,
        on_segments: OnSegments,
    ) -> Transcript:
        script = read_script(fh)
        if script is None:
            samples = audio.decode(fh, duration_s)
            duration_s = len(samples) / audio.SAMPLE_RATE
            script = {"duration": duration_s, "segments": max(1, int(duration_s))}
        step = dict(script)
        step.update(script.get("attempts", {}).get(str(self.attempt), {}))
        mode = step.get("mode", "ok")
        n = max(1, int(script.get("segments", 1)))
        length = float(script.get("duration", duration_s)) / n
        delay = float(step.get("delay_s", 0.0))
        after = step.get("after_segments")
        out = []
        if mode != "ok" and not after:
            _misbehave(mode, step)
        for i in range(n):
            start, end = round(i * length, 3), round((i + 1) * length, 3)
            if end <= resume_from + 1e-6:
                continue
            if delay:
                time.sleep(delay)
            text = f" segment {i + 1} of {n}."
            if script.get("text_size"):  # long segments: outputs large enough to fill a small disk
                text += " words" * (int(script["text_size"]) // 6)
            seg = {"start": start, "end": end, "text": text}
            if options.get("word_timestamps"):
                seg["words"] = [{"word": f" segment{i + 1}", "start": start, "end": end, "probability": 1.0}]
            out.append(seg)
            on_segments([seg], end)
            on_progress(end)
            if script.get("log"):  # a job log that grows while the job runs (the web face's live tail)
                print(f"test engine: segment {i + 1} of {n} done", file=sys.stderr, flush=True)
            if after and len(out) >= int(after) and mode != "ok":
                _misbehave(mode, step)
        return Transcript(language="en", segments=out)

    def between_jobs(self) -> None:
        return None


def _misbehave(mode: str, step: dict[str, Any]) -> None:  # noqa: C901 - one arm per fault
    if mode == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif mode == "exit":
        os._exit(int(step.get("code", 3)))
    elif mode == "hang":
        while True:
            time.sleep(3600)
    elif mode == "busy":
        while True:
            pass
    elif mode == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
        while True:
            time.sleep(3600)
    elif mode == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if step.get("child"):
            _spawn_sleeper(step, setsid=False)  # inherits SIG_IGN
        while True:
            time.sleep(3600)
    elif mode == "hog":  # a decoder gone wild: memory grows and stays
        hog = [bytearray(2**20) for _ in range(int(step.get("mb", 300)))]
        for block in hog:
            block[::4096] = b"x" * len(block[::4096])  # touched, so resident
        while True:
            time.sleep(3600)
    elif mode == "killed":  # what the kernel's OOM killer does
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "oom":  # a hard memory limit, then more than it allows
        import resource

        limit = int(step.get("limit_mb", 512)) * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        hog = []
        while True:
            hog.append(bytearray(64 * 2**20))
    elif mode == "error":
        raise RuntimeError(step.get("message", "scripted engine failure"))
    elif mode == "bad_input":
        raise BadInput(step.get("message", "scripted bad input"))
    elif mode == "grandchild":
        _leave_descendant(step)
        if step.get("then") == "ok":
            return
        while True:
            time.sleep(3600)
    else:
        raise BadInput(f"unknown test mode {mode!r}")


def _sleeper_env(step: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    env["SPOOLTEST_MARKER"] = str(step.get("marker", "spooltest"))
    return env


def _spawn_sleeper(step: dict[str, Any], *, setsid: bool) -> None:
    subprocess.Popen(
        [sys.executable, "-c", "import time\nwhile True: time.sleep(3600)"],
        env=_sleeper_env(step),
        start_new_session=setsid,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _leave_descendant(step: dict[str, Any]) -> None:
    pattern = step.get("pattern", "plain")
    if pattern == "plain":
        _spawn_sleeper(step, setsid=False)
    elif pattern == "setsid":
        _spawn_sleeper(step, setsid=True)
    elif pattern in ("double_fork", "orphan"):
        # A middle process starts the sleeper and exits: the sleeper's parent died first.
        code = (
            "import subprocess, sys, os\n"
            "subprocess.Popen([sys.executable, '-c', 'import time\\nwhile True: time.sleep(3600)'],"
            f" start_new_session={pattern == 'double_fork'},"
            " stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "os._exit(0)\n"
        )
        subprocess.run([sys.executable, "-c", code], env=_sleeper_env(step), check=False)
    else:
        raise BadInput(f"unknown grandchild pattern {pattern!r}")
