"""One small class owns one worker process: spawn, talk, sample, stop, sweep.

The worker runs in its own session (so its process group is ours to signal)
and carries a marker in its environment that every descendant inherits.
Stopping is asynchronous so the daemon's loop never blocks on a stubborn
process: ``begin_stop`` sends SIGTERM (and SIGCONT, so a stopped process can
act on it) to the group, ``poll_stop`` escalates to SIGKILL after the grace
period and finally sweeps descendants that left the group (``setsid``) or
whose parent died first (adopted by the daemon, a child subreaper on Linux).
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from processor import protocol

MARKER_ENV = "SPOOLSCRIBE_WORKER"
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux); the only way seen to catch every escapee."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class WorkerState(enum.StrEnum):
    starting = "starting"
    """Spawned; loading its model."""
    idle = "idle"
    """Ready for a job."""
    busy = "busy"
    """Running a job."""
    stopping = "stopping"
    """SIGTERM sent (or asked to exit); waiting for it to go."""
    dead = "dead"
    """Exited and reaped."""


@dataclass
class Exit:
    code: int | None  # exit status, None if killed by a signal
    signal: int | None
    killed: bool  # we escalated to SIGKILL
    swept: int  # descendants killed by the sweep

    def describe(self) -> str:
        if self.signal:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"killed by {name}"
        return f"exited with status {self.code}"


@dataclass
class WorkerProcess:
    """A warm worker: one engine + model, many jobs."""

    wid: str
    key: tuple[str, str]  # (engine, model)
    argv: list[str]
    env: dict[str, str]
    inbox: queue.Queue[tuple[str, str, Any]]  # (kind, wid, payload) to the daemon loop
    on_stderr: Callable[[WorkerProcess, bytes], None]
    state: WorkerState = WorkerState.starting
    job: str | None = None
    last_job: str | None = None  # its stderr after a job ended still belongs to that job's log
    jobs_done: int = 0
    pid: int = 0
    create_time: float = 0.0
    retiring: bool = False
    spawned_at: float = 0.0
    stop_deadline: float | None = None
    killed: bool = False
    swept: int = 0
    _proc: subprocess.Popen[bytes] | None = None
    _ps: psutil.Process | None = None
    _cpu_last: tuple[float, float] | None = None
    _remembered: list[psutil.Process] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- life -----------------------------------------------------------------

    def spawn(self, now: float) -> None:
        self.spawned_at = now
        env = dict(self.env)
        env[MARKER_ENV] = self.wid
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
            close_fds=True,
        )
        self.pid = self._proc.pid
        try:
            self._ps = psutil.Process(self.pid)
            self.create_time = self._ps.create_time()
        except psutil.Error:
            self._ps, self.create_time = None, 0.0
        threading.Thread(target=self._read_stdout, name=f"{self.wid}-out", daemon=True).start()
        threading.Thread(target=self._read_stderr, name=f"{self.wid}-err", daemon=True).start()

    def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in iter(lambda: self._proc.stdout.readline(protocol.MAX_LINE), b""):  # type: ignore[union-attr]
            msg = protocol.decode(line)
            if msg is not None:
                self.inbox.put(("msg", self.wid, msg))
        self.inbox.put(("eof", self.wid, None))

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in iter(self._proc.stderr.readline, b""):
            self.on_stderr(self, line)

    def ready(self) -> None:
        """It loaded its model (``ready``): jobs may be handed to it."""
        self.state = WorkerState.idle

    def take(self, job_id: str) -> None:
        self.state, self.job, self.last_job = WorkerState.busy, job_id, job_id

    def release(self) -> None:
        """Its job is over (result, error or skip): free for the next one."""
        self.state, self.job = WorkerState.idle, None
        self.jobs_done += 1

    def send(self, msg: protocol.ToWorker) -> bool:
        """Write one message; False if the worker is gone (its EOF will follow)."""
        if self._proc is None or self._proc.stdin is None:
            return False
        try:
            self._proc.stdin.write(protocol.encode(msg))
            self._proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def retire(self, now: float, timeout_s: float) -> None:
        """Ask an idle worker to exit by itself (recycling); killed if it has not within ``timeout_s``."""
        self.retiring = True
        self.state = WorkerState.stopping
        self.stop_deadline = now + timeout_s
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                self._proc.stdin.close()

    # --- resources ------------------------------------------------------------

    def tree(self) -> list[psutil.Process]:
        """The worker and every descendant still linked to it."""
        if self._ps is None:
            return []
        try:
            return [self._ps, *self._ps.children(recursive=True)]
        except psutil.Error:
            return []

    def kill_descendants(self) -> int:
        """Between jobs a worker has no children of its own: whatever a job left behind dies now."""
        leftovers = self.tree()[1:]
        for p in leftovers:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(leftovers, timeout=2)
        if not sys.platform.startswith("linux"):  # no subreaper: find escapees by their marker
            return len(leftovers) + sweep_marked(self.wid, exclude={self.pid})
        return len(leftovers)

    def rss(self) -> int:
        """Resident bytes of the whole tree now (cheap: no CPU bookkeeping)."""
        total = 0
        for p in self.tree():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def sample(self, now: float) -> tuple[float, int]:
        """(cpu % of one core since the last sample, resident bytes) over the whole tree."""
        cpu, rss = 0.0, 0
        for p in self.tree():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                cpu += t.user + t.system
                rss += p.memory_info().rss
        last = self._cpu_last
        self._cpu_last = (now, cpu)
        if last is None or now <= last[0]:
            return 0.0, rss
        return round(100.0 * max(0.0, cpu - last[1]) / (now - last[0]), 1), rss

    # --- stopping -------------------------------------------------------------

    def begin_stop(self, now: float, grace_s: float) -> None:
        """SIGTERM (+SIGCONT) to the whole group; escalation happens in ``poll_stop``."""
        if self.state is WorkerState.dead:
            return
        self._remember_descendants()
        self.state = WorkerState.stopping
        self.stop_deadline = now + grace_s
        for sig in (signal.SIGTERM, signal.SIGCONT):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    def poll_stop(self, now: float) -> Exit | None:
        """Advance a stop; returns the exit once the whole tree is gone."""
        assert self._proc is not None
        code = self._proc.poll()
        group_alive = _group_alive(self.pid)
        if code is None or group_alive:
            if self.stop_deadline is not None and now >= self.stop_deadline and not self.killed:
                self.killed = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                self._kill_remembered()
            return None
        self.swept += self._kill_remembered()
        self.swept += sweep_marked(self.wid)
        self.state = WorkerState.dead
        return self.exit_info(code)

    def exit_info(self, code: int) -> Exit:
        return Exit(
            code=code if code >= 0 else None,
            signal=-code if code < 0 else None,
            killed=self.killed,
            swept=self.swept,
        )

    def wait_exit(self) -> int | None:
        """Reap the worker if it has exited (after EOF)."""
        return None if self._proc is None else self._proc.poll()

    def _remember_descendants(self) -> None:
        """Descendants that called setsid() leave the group: note them while still linked."""
        self._remembered = self.tree()[1:]

    def _kill_remembered(self) -> int:
        n = 0
        for p in self._remembered:
            with contextlib.suppress(psutil.Error):
                if p.is_running():  # psutil checks (pid, create_time): no PID-reuse victim
                    p.kill()
                    n += 1
        return n

    def close_pipes(self) -> None:
        if self._proc is None:
            return
        for pipe in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            with contextlib.suppress(OSError, ValueError):
                if pipe is not None:
                    pipe.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Members may be zombies waiting for their parent; they count as gone.
    for p in psutil.process_iter(["pid", "status"]):
        with contextlib.suppress(psutil.Error):
            if os.getpgid(p.info["pid"]) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                return True
    return False


def sweep_marked(wid: str, exclude: set[int] | None = None) -> int:
    """Kill every process whose environment carries this worker's marker."""
    n = 0
    skip = {os.getpid(), *(exclude or set())}
    for p in psutil.process_iter(["pid"]):
        if p.info["pid"] in skip:
            continue
        with contextlib.suppress(psutil.Error):
            if p.environ().get(MARKER_ENV) == wid:
                p.kill()
                n += 1
    reap_adopted()
    return n


def reap_adopted(known: set[int] | None = None) -> list[int]:
    """Reap exited children that are not our workers (descendants we adopted as subreaper)."""
    reaped: list[int] = []
    known = known or set()
    try:
        children = psutil.Process().children()
    except psutil.Error:
        return reaped
    for child in children:
        if child.pid in known:
            continue
        with contextlib.suppress(ChildProcessError, OSError):
            pid, _ = os.waitpid(child.pid, os.WNOHANG)
            if pid:
                reaped.append(pid)
    return reaped


def kill_adopted(known: set[int]) -> int:
    """Kill (and reap) children of the daemon that are not live workers: escaped descendants."""
    n = 0
    try:
        children = psutil.Process().children()
    except psutil.Error:
        return 0
    for child in children:
        if child.pid in known:
            continue
        with contextlib.suppress(psutil.Error):
            if child.environ().get(MARKER_ENV):
                child.kill()
                n += 1
    reap_adopted(known)
    return n


def kill_recorded(pid: int, create_time: float, grace_s: float) -> bool:
    """Kill the process tree of a worker a dead daemon left running, only if its identity matches.

    A PID seen again with another create_time belongs to an unrelated process:
    never signal it.  Returns whether anything was killed.
    """
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > 0.01:
            return False
        members = [proc, *proc.children(recursive=True)]
        wid = proc.environ().get(MARKER_ENV)
    except psutil.Error:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
        os.killpg(pid, signal.SIGCONT)
    _, alive = psutil.wait_procs(members, timeout=grace_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=2)
    if wid:
        sweep_marked(wid)
    return True


def worker_argv(engine: str, model: str, models_dir: Path, threads: int, lanes: int = 1) -> list[str]:
    return [
        sys.executable,
        "-m",
        "processor.worker",
        "--engine",
        engine,
        "--model",
        model,
        "--models-dir",
        str(models_dir),
        "--threads",
        str(threads),
        "--lanes",
        str(lanes),
    ]
