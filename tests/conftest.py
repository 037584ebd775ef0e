"""Fixtures that build a real spool in tmp_path and run the real daemon as a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import structlog

from schema.sqlite_store import SQLiteEventStore
from spool.layout import Layout

REPO = Path(__file__).resolve().parent.parent
SHARED_AUDIO = REPO.parent / "shared" / "audio"
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    pause = threading.Event()
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        pause.wait(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}; last value {last!r}")


def observe_for(seconds: float, check: Callable[[], None], interval: float = 0.05) -> None:
    """Call ``check`` repeatedly for a fixed window: an observation period, not a wait for a result."""
    deadline = time.monotonic() + seconds
    pause = threading.Event()
    while time.monotonic() < deadline:
        check()
        pause.wait(interval)


def writer_pause(seconds: float) -> None:
    """The pace of a simulated slow producer (a fault we inject), not a wait for a result."""
    threading.Event().wait(seconds)


def script(**kw: Any) -> bytes:
    """Content of an input the test engine follows (see processor/worker/engines/testing.py)."""
    return b"SPOOLTEST" + json.dumps(kw).encode()


def drop(inbox: Path, name: str, data: bytes) -> Path:
    """Drop a file by the rename convention: written hidden, then renamed into place."""
    target = inbox / name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    tmp.write_bytes(data)
    os.rename(tmp, target)
    return target


@dataclass
class DaemonProc:
    root: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def kill9(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Spool:
    """A real spool directory with helpers to run the daemon and read its state."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.layout = Layout(root)
        self.layout.ensure()
        self.daemons: list[DaemonProc] = []
        self.config: dict[str, str] = {
            "SPOOL_ENGINE": "test",
            "SPOOL_SETTLE_S": "0.3",
            "SPOOL_RESCAN_S": "2",
            "SPOOL_HEARTBEAT_S": "0.5",
            "SPOOL_PROGRESS_S": "0.2",
            "SPOOL_RETRY_BACKOFF_S": "0.2",
            "SPOOL_GRACE_S": "1",
            "SPOOL_FREE_DISK_FLOOR_MB": "0",
            "SPOOL_LOG_LEVEL": "debug",
            "SPOOL_RECENT_S": "0",  # bad inputs are quarantined at once (test_stalled_writer sets it)
        }

    @property
    def inbox(self) -> Path:
        return self.layout.inbox

    def drop(self, name: str, data: bytes) -> Path:
        return drop(self.inbox, name, data)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
        env.update(self.config)
        env.update(extra)
        env["SPOOL_ROOT"] = str(self.root)
        env["PYTHONPATH"] = str(REPO / "src")
        return env

    def start(self, *args: str, wait_ready: bool = True, **env: str) -> DaemonProc:
        log = self.root / f"daemon-{len(self.daemons)}.out"
        fh = open(log, "wb")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "spoolscribe", "run", "--root", str(self.root), *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=self.env(**env),
            cwd=REPO,
        )
        fh.close()
        d = DaemonProc(self.root, proc, log, env)
        self.daemons.append(d)
        if wait_ready:
            wait_for(lambda: "worker.ready" in d.output() or not d.alive(), 60, what="daemon ready")
            assert d.alive(), d.output()
        return d

    def cli(self, *args: str, check: bool = False, **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "spoolscribe", *args],
            capture_output=True,
            text=True,
            env=self.env(**env),
            cwd=REPO,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"spool {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result

    def store(self) -> SQLiteEventStore:
        return SQLiteEventStore(self.layout.db)

    def jobs(self) -> list[Any]:
        if not self.layout.db.exists():
            return []
        s = self.store()
        try:
            return s.jobs()
        finally:
            s.close()

    def terminal(self, n: int) -> list[Any]:
        """At least ``n`` finished jobs, each with its files moved (the daemon moves them just after the event)."""
        jobs = [j for j in self.jobs() if j.state.terminal and not self.layout.job_dir(j.id).exists()]
        return jobs if len(jobs) >= n else []

    def wait_terminal(self, n: int, timeout: float = 60.0) -> list[Any]:
        return wait_for(lambda: self.terminal(n), timeout, what=f"{n} finished jobs")

    def outbox_files(self) -> list[str]:
        return sorted(str(p.relative_to(self.layout.outbox)) for p in self.layout.outbox.rglob("*") if p.is_file())

    def failed_files(self) -> list[str]:
        return sorted(str(p.relative_to(self.layout.failed)) for p in self.layout.failed.rglob("*") if p.is_file())

    def cleanup(self) -> None:
        for d in self.daemons:
            with contextlib.suppress(Exception):
                d.stop(signal.SIGTERM, timeout=20)
            with contextlib.suppress(Exception):
                d.kill9()
        kill_marked(str(self.root))


def kill_marked(root: str) -> int:
    """Kill any process this spool's daemon started that is still alive (test hygiene)."""
    n = 0
    for p in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error):
            if p.environ().get("SPOOLSCRIBE_ROOT") == root or p.environ().get("SPOOL_ROOT") == root:
                p.kill()
                n += 1
    return n


def survivors(root: str) -> list[int]:
    found = []
    for p in psutil.process_iter(["pid", "status"]):
        with contextlib.suppress(psutil.Error):
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            env = p.environ()
            if env.get("SPOOLSCRIBE_ROOT") == root:
                found.append(p.pid)
    return found


def marked(marker: str) -> list[int]:
    found = []
    for p in psutil.process_iter(["pid", "status"]):
        with contextlib.suppress(psutil.Error):
            if p.info["status"] != psutil.STATUS_ZOMBIE and p.environ().get("SPOOLTEST_MARKER") == marker:
                found.append(p.pid)
    return found


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool")
    yield s
    s.cleanup()


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def speech_wav(tmp_path: Path, text: str, name: str = "speech.wav") -> Path:
    """Synthetic speech (espeak-ng, 130 wpm, resampled to 16 kHz with sox); skips if either is missing."""
    if not (have("espeak-ng") and have("sox")):
        pytest.skip("espeak-ng and sox are needed for synthetic speech (apt-get install espeak-ng sox)")
    raw = tmp_path / f"raw-{name}"
    out = tmp_path / name
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "130", "-g", "10", "-w", str(raw), "--", text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(out)], check=True)
    raw.unlink()
    return out


SYNTHETIC_TEXT = "Ask not what your country can do for you. Ask what you can do for your country."


def reference_speech(tmp_path: Path) -> tuple[Path, str, float]:
    """(audio, reference text, WER allowed): jfk.flac when ../shared/audio exists, else espeak-ng speech.

    Real speech must come out exact (WER 0 after normalising case and
    punctuation); tiny.en gets most but not all synthetic words right.
    """
    jfk = SHARED_AUDIO / "jfk.flac"
    if jfk.exists():
        return jfk, JFK_TEXT, 0.0
    return speech_wav(tmp_path, SYNTHETIC_TEXT, name="synthetic-source.wav"), SYNTHETIC_TEXT, 0.2


def words(text: str) -> list[str]:
    import re

    return re.findall(r"[a-z0-9']+", text.lower())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after normalising case and punctuation (Levenshtein over words)."""
    r, h = words(reference), words(hypothesis)
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)] / max(1, len(r))
