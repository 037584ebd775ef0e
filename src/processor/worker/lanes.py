"""Lanes: how many windows of one job a worker transcribes at once, and the look-ahead that runs them.

Why (issue 17, numbers in docs/performance.md): on a CPU, CTranslate2 gains little
from a second thread in one decode, but two decodes side by side, one thread each,
run nearly twice as fast.  So a worker loads its model with one replica per lane
it may be given, and the daemon tells it how many lanes the current job may use:
the cores no other job needs, changed while the job runs (``lanes`` messages).

Windows are independent (no conditioning on previous text), so window *i + 1*
can be decoded while window *i* still is; :class:`LookAhead` hands them out and
the long-form loop emits them strictly in window order.  The transcript is the
same whatever the lanes: the lanes change only when each window is decoded.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

W = TypeVar("W")
R = TypeVar("R")


class Lanes:
    """The lanes the current job may use, 1..``most``; set from the worker's protocol reader thread."""

    def __init__(self, most: int = 1, value: int = 1) -> None:
        self.most = max(1, most)
        self._value = self._clamp(value)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def _clamp(self, n: int) -> int:
        return max(1, min(self.most, int(n)))

    @property
    def value(self) -> int:
        return self._value

    def set(self, n: int) -> None:
        with self._lock:
            changed = self._clamp(n) != self._value
            self._value = self._clamp(n)
            listeners = list(self._listeners)
        if changed:
            for listener in listeners:
                listener()

    def listen(self, listener: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unlisten(self, listener: Callable[[], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)


class LookAhead(Generic[W, R]):
    """Windows in order, each with the future of its decode when it ran on a lane (None: decode it here).

    With one lane the caller decodes each window itself (streaming, checkpointing
    as it goes), exactly as without lanes.  With more, windows are decoded on lane
    threads, up to ``lanes.value`` at once (the caller's own window, if it is
    decoding one, counts), and the caller only waits for them in order.
    ``may_run_ahead()`` false (the language is not known yet) keeps it to one
    lane.  At most ``2 x lanes`` windows are held, so memory stays bounded.
    """

    def __init__(
        self,
        windows: Iterator[W],
        work: Callable[[W], R],
        lanes: Lanes,
        *,
        busy: Callable[[W], bool],
        may_run_ahead: Callable[[], bool] = lambda: True,
    ) -> None:
        self._windows = windows
        self._work = work
        self._lanes = lanes
        self._busy = busy  # whether a window needs decoding at all (one of silence does not)
        self._may = may_run_ahead
        self._lock = threading.RLock()  # a future's done callback may top up from inside a top-up
        self._ahead: collections.deque[tuple[W, Future[R] | None]] = collections.deque()
        self._exhausted = False
        self._closed = False
        self._error: BaseException | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._here = False  # the caller is decoding a window itself (it counts as a lane)
        self._inflight: set[Future[R]] = set()  # decoding on a lane, handed to the caller or not
        self.ran_ahead = 0  # windows decoded on another lane (the manifest says so)

    def __enter__(self) -> LookAhead[W, R]:
        self._lanes.listen(self.top_up)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._lanes.unlisten(self.top_up)
        with self._lock:
            self._closed = True
            for _, fut in self._ahead:
                if fut is not None:
                    fut.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # a decode in flight finishes: its thread is not ours to kill

    def __iter__(self) -> Iterator[tuple[W, Future[R] | None]]:
        while True:
            with self._lock:
                self._raise_pending()
                self._here = False  # the caller is done with the window it decoded itself
                item: tuple[W, Future[R] | None] | None
                if self._ahead:
                    item = self._ahead.popleft()
                else:
                    self._fill()  # more than one lane: the next window goes to a lane as well
                    if self._ahead:
                        item = self._ahead.popleft()
                    else:
                        win = self._pull()
                        item = None if win is None else (win, None)
                        self._here = item is not None and self._busy(item[0])
                self._fill()
            if item is None:
                return
            yield item

    def top_up(self) -> None:
        """Start what the lanes allow now (called on a lanes change and when a decode ends)."""
        with self._lock:
            try:
                self._fill()
            except BaseException as e:  # noqa: BLE001 - raised in the caller's thread, at its next window
                self._error = self._error or e

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _pull(self) -> W | None:
        if self._exhausted or self._closed:
            return None
        win = next(self._windows, None)
        if win is None:
            self._exhausted = True
        return win

    def _running(self) -> int:
        """Decodes under way: on the lanes, and the caller's own window while it decodes one."""
        return self._here + len(self._inflight)

    def _fill(self) -> None:
        lanes = self._lanes.value
        while (
            lanes > 1 and not self._closed and self._running() < lanes and len(self._ahead) < 2 * lanes and self._may()
        ):
            win = self._pull()
            if win is None:
                return
            if not self._busy(win):
                self._ahead.append((win, None))
                continue
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._lanes.most, thread_name_prefix="lane")
            fut = self._pool.submit(self._work, win)
            self.ran_ahead += 1
            self._ahead.append((win, fut))
            self._inflight.add(fut)
            fut.add_done_callback(self._ended)

    def _ended(self, fut: Future[R]) -> None:
        with self._lock:
            self._inflight.discard(fut)
        self.top_up()
