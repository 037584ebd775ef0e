"""The deploy files say what the operations docs promise."""

from __future__ import annotations

import plistlib

from tests.conftest import REPO

OPS = REPO / "src" / "ops"


def unit() -> dict[str, str]:
    values = {}
    for line in (OPS / "systemd" / "spoolscribe.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def test_systemd_unit() -> None:
    u = unit()
    assert u["Type"] == "notify" and u["KillMode"] == "control-group" and u["Restart"] == "on-failure"
    assert int(u["WatchdogSec"]) > 0 and int(u["TimeoutStopSec"]) > 5  # > grace_s: workers stop first
    assert u["ExecStart"].endswith("spool run") and u["UMask"] == "0027"


def test_launchd_plist() -> None:
    plist = plistlib.loads((OPS / "launchd" / "org.spoolscribe.daemon.plist").read_bytes())
    assert plist["ProgramArguments"][1:3] == ["run", "--root"]
    assert plist["KeepAlive"] == {"SuccessfulExit": False} and plist["Umask"] == 0o027
