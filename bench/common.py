"""Shared pieces of the benchmarks: machine facts, speech clips, a daemon runner."""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "audio"
CORPUS = [line.strip() for line in (Path(__file__).parent / "corpus.txt").read_text().splitlines() if line.strip()]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_1m": round(os.getloadavg()[0], 2),
    }


def commit() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", ":!docs/performance.md", ":!docs/reliability.md"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout  # the reports these benchmarks rewrite are not a change to what they measure
        return rev + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        pause.wait(0.02)
    raise TimeoutError(f"{what} did not happen within {timeout} s")


# --- speech -------------------------------------------------------------------


def have_speech_tools() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


def speak(text: str, out: Path) -> Path:
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "130", "-g", "10", "-w", str(raw), "--", text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(out)], check=True)
    raw.unlink()
    return out


def clip_text(seed: int, seconds: float) -> str:
    """Distinct text of about ``seconds`` of speech at 130 words per minute."""
    rng = random.Random(seed)
    words_needed = seconds * 85 / 60  # espeak-ng -s 130 -g 10 speaks ~85 words a minute
    picked: list[str] = []
    pool = CORPUS[:]
    rng.shuffle(pool)
    while sum(len(s.split()) for s in picked) < words_needed:
        if not pool:
            pool = CORPUS[:]
            rng.shuffle(pool)
        picked.append(pool.pop())
    return " ".join(picked)


def speech_clips(folder: Path, count: int, seconds: float, seed: int = 0) -> list[Path]:
    """``count`` clips of about ``seconds`` each, each with different sentences (cached in ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        path = folder / f"clip-{int(seconds)}s-{seed + i:03d}.wav"
        if not path.exists():
            if seconds <= 60:
                speak(clip_text(seed * 1000 + i, seconds), path)
            else:  # long clips: distinct 30 s pieces joined, so nothing repeats
                parts = speech_clips(folder / "parts", int(seconds // 30), 30.0, seed=10_000 + seed * 100 + i * 20)
                subprocess.run(["sox", *map(str, parts), str(path)], check=True)
        out.append(path)
    return out


def audio_seconds(path: Path) -> float:
    sys.path.insert(0, str(REPO / "src"))
    from processor.worker import audio

    with open(path, "rb") as fh:
        return len(audio.decode(fh, audio.probe(fh))) / audio.SAMPLE_RATE


# --- the daemon -----------------------------------------------------------------


class Daemon:
    """A real spool daemon in a temporary root, for measurements from the outside."""

    def __init__(self, root: Path | None = None, *, prefix: tuple[str, ...] = (), **config: str) -> None:
        """``prefix``: a command the daemon runs under (``taskset -c 0``: one core)."""
        self.prefix = prefix
        self.root = root or Path(tempfile.mkdtemp(prefix="spoolbench-")) / "spool"
        self.config = {"SPOOL_FREE_DISK_FLOOR_MB": "0", "SPOOL_LOG_LEVEL": "info", **config}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.root.parent / "daemon.out"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    def init(self) -> Daemon:
        subprocess.run(
            [sys.executable, "-m", "spoolscribe", "init", "--root", str(self.root)],
            check=True,
            env=self.env(),
            capture_output=True,
        )
        return self

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
        env.update(self.config)
        env["PYTHONPATH"] = str(REPO / "src")
        return env

    def start(self, wait_ready: bool = True) -> Daemon:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "spoolscribe", "run", "--root", str(self.root)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=self.env(),
                cwd=REPO,
            )
        if wait_ready:
            wait(lambda: self.ready(), 120, "daemon ready")
        return self

    def ready(self, count: int = 1) -> bool:
        """``count`` workers have loaded their model (the daemon logs ``worker.ready``)."""
        try:
            return self.log.read_text(errors="replace").count('"worker.ready"') >= count
        except FileNotFoundError:
            return False

    def workers(self) -> list[psutil.Process]:
        if self.proc is None:
            return []
        try:
            return [c for c in psutil.Process(self.proc.pid).children() if "processor.worker" in " ".join(c.cmdline())]
        except psutil.Error:
            return []

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)

    def store(self) -> Any:
        sys.path.insert(0, str(REPO / "src"))
        from schema.sqlite_store import SQLiteEventStore

        return SQLiteEventStore(self.root / "state" / "spool.db")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root.parent, ignore_errors=True)


def put_section(doc: Path, begin: str, end: str, new: str) -> None:
    """Put ``new`` (which starts with ``begin`` and ends with ``end``) in place of that section of ``doc``,
    or at its end: each long benchmark owns one marked section of docs/performance.md."""
    text = doc.read_text()
    if begin in text:
        head, rest = text.split(begin, 1)
        text = head + new + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + new + "\n"
    doc.write_text(text)


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
