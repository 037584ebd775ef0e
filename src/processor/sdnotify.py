"""sd_notify over $NOTIFY_SOCKET (no extra dependency): READY, WATCHDOG, STATUS, STOPPING.

systemd's ``Type=notify`` waits for READY=1; with ``WatchdogSec`` it restarts
the daemon when WATCHDOG=1 stops arriving.  The ping is sent from the main
loop, so a frozen loop (not merely a live process) is what gets restarted.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class Notifier:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.path = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        mine = pid is None or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec and usec.isdigit() and mine else None
        self._last_ping = float("-inf")

    def send(self, message: str) -> bool:
        if not self.path:
            return False
        address = "\0" + self.path[1:] if self.path.startswith("@") else self.path
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(message.encode(), address)
            except OSError:
                return False
        return True

    def ready(self, status: str) -> None:
        self.send(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def maybe_ping(self, now_mono: float) -> bool:
        """WATCHDOG=1 at half the watchdog period."""
        if self.watchdog_s is None or now_mono - self._last_ping < self.watchdog_s / 2:
            return False
        self._last_ping = now_mono
        return self.send("WATCHDOG=1")

    def next_ping_in(self, now_mono: float) -> float | None:
        if self.watchdog_s is None:
            return None
        return max(0.0, self._last_ping + self.watchdog_s / 2 - now_mono)
