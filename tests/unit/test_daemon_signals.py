"""A stop signal can arrive at any bytecode, also while the loop holds its queue's lock."""

from __future__ import annotations

import threading
from pathlib import Path

from processor import config
from processor.daemon import Daemon


def test_a_stop_signal_while_the_queue_lock_is_held_does_not_deadlock(tmp_path: Path) -> None:
    daemon = Daemon(config.load({"root": str(tmp_path / "spool")}, {}), env={})
    done = threading.Event()

    def handler_inside_get() -> None:  # what a signal does to the main thread inside queue.get
        with daemon.queue.mutex:
            daemon.request_stop("SIGTERM")
        done.set()

    t = threading.Thread(target=handler_inside_get, daemon=True)
    t.start()
    assert done.wait(5), "request_stop waited for the queue's lock its own thread held"
    assert daemon._stop_reason == "SIGTERM"
