"""The inbox watcher: watchfiles in a thread, restarted whenever it dies.

Its events are hints that make intake fast; correctness comes from the scans
(at start and every ``rescan_s``).  watchfiles was seen to drop events on
inotify overflow, to miss folders moved in and to die on non-UTF-8 names
(DESIGN.md), so a watcher failure is logged, counted and survived.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import watchfiles


@dataclass(frozen=True)
class Hint:
    """One batch of changes, as inbox-relative paths."""

    added: frozenset[str]
    modified: frozenset[str]
    deleted: frozenset[str]


class InboxWatcher:
    def __init__(
        self,
        inbox: Path,
        on_hint: Callable[[Hint], None],
        on_error: Callable[[BaseException, int], None],
        *,
        debounce_ms: int = 30,
        force_polling: bool = False,
        poll_delay_ms: int = 300,
    ) -> None:
        self._inbox = inbox.resolve()
        self._on_hint = on_hint
        self._on_error = on_error
        self._debounce_ms = debounce_ms
        self._force_polling = force_polling
        self._poll_delay_ms = poll_delay_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.restarts = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="inbox-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._watch()
                backoff = 0.1
            except BaseException as e:  # noqa: BLE001 - any watcher death is survived
                self.restarts += 1
                self._on_error(e, self.restarts)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _watch(self) -> None:
        prefix = str(self._inbox) + "/"
        for changes in watchfiles.watch(
            self._inbox,
            watch_filter=None,
            debounce=self._debounce_ms * 4,
            step=self._debounce_ms,
            stop_event=self._stop,
            yield_on_timeout=False,
            raise_interrupt=False,
            force_polling=self._force_polling,
            poll_delay_ms=self._poll_delay_ms,
            ignore_permission_denied=True,
            recursive=True,
        ):
            sets: dict[watchfiles.Change, set[str]] = {c: set() for c in watchfiles.Change}
            for change, path in changes:
                if path.startswith(prefix):
                    sets[change].add(path[len(prefix) :])
            self._on_hint(
                Hint(
                    frozenset(sets[watchfiles.Change.added]),
                    frozenset(sets[watchfiles.Change.modified]),
                    frozenset(sets[watchfiles.Change.deleted]),
                )
            )
