"""The warm workers: at most ``workers`` processes, each bound to one (engine, model)."""

from __future__ import annotations

import itertools
import os
import queue
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from processor.supervisor import WorkerProcess, WorkerState, worker_argv


class WorkerPool:
    def __init__(
        self,
        size: int,
        models_dir: Path,
        threads: int,
        env: dict[str, str],
        instance: str,
        inbox: queue.Queue[tuple[str, str, Any]],
        on_stderr: Callable[[WorkerProcess, bytes], None],
        on_spawn: Callable[[], None] = lambda: None,
        engine_args: Sequence[str] = (),
        lanes: int = 1,
    ) -> None:
        """``engine_args`` go to every worker (``--device cuda --compute-type float16``); ``lanes``: the most
        windows of one job a worker may decode at once (each a model replica, loaded with the worker)."""
        self.size = size
        self.lanes = max(1, lanes)
        self._engine_args = list(engine_args)
        self._models_dir = models_dir
        self._threads = threads
        self._env = env
        self._instance = instance
        self._inbox = inbox
        self._on_stderr = on_stderr
        self._on_spawn = on_spawn
        self._ids = itertools.count(1)
        self.workers: dict[str, WorkerProcess] = {}
        self.load_failures: dict[tuple[str, str], int] = {}
        self.spawned = 0

    def live(self) -> list[WorkerProcess]:
        return [w for w in self.workers.values() if w.state is not WorkerState.dead]

    def busy(self) -> list[WorkerProcess]:
        return [w for w in self.workers.values() if w.state is WorkerState.busy]

    def pids(self) -> set[int]:
        return {w.pid for w in self.live()}

    def idle_for(self, key: tuple[str, str]) -> WorkerProcess | None:
        for w in self.workers.values():
            if w.state is WorkerState.idle and w.key == key:
                return w
        return None

    def starting_for(self, key: tuple[str, str]) -> bool:
        return any(w.state is WorkerState.starting and w.key == key for w in self.workers.values())

    def threads_for(self) -> int:
        """Engine threads per worker: as configured, or the cores shared evenly (no oversubscription)."""
        return self._threads or max(1, (os.cpu_count() or 1) // self.size)

    def ensure(self, key: tuple[str, str], now: float) -> WorkerProcess | None:
        """An idle worker for ``key``, spawning (or replacing an idle one) if there is room."""
        ready = self.idle_for(key)
        if ready is not None:
            return ready
        if self.starting_for(key):
            return None
        live = self.live()
        if len(live) >= self.size:
            spare = next((w for w in live if w.state is WorkerState.idle and w.key != key), None)
            if spare is None:
                return None
            spare.retire(now, 15.0)
            return None
        self.spawn(key, now)
        return None

    def warm(self, key: tuple[str, str], now: float) -> None:
        """Start every worker the pool may hold, all for ``key``: a backlog at start finds them all loaded."""
        while len(self.live()) < self.size:
            self.spawn(key, now)

    def spawn(self, key: tuple[str, str], now: float) -> WorkerProcess:
        engine, model = key
        wid = f"{self._instance}-w{next(self._ids)}"
        worker = WorkerProcess(
            wid=wid,
            key=key,
            argv=[
                *worker_argv(engine, model, self._models_dir, self.threads_for(), self.lanes),
                *self._engine_args,
            ],
            env=self._env,
            inbox=self._inbox,
            on_stderr=self._on_stderr,
        )
        self._on_spawn()
        worker.spawn(now)
        self.workers[wid] = worker
        self.spawned += 1
        return worker

    def forget_dead(self) -> None:
        for wid in [w.wid for w in self.workers.values() if w.state is WorkerState.dead]:
            self.workers.pop(wid).close_pipes()
