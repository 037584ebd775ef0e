"""The deploy files say what the operations docs promise."""

from __future__ import annotations

import plistlib

from tests.conftest import REPO

OPS = REPO / "src" / "ops"


def unit(name: str = "spoolscribe.service") -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (OPS / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def one(u: dict[str, list[str]], key: str) -> str:
    (value,) = u[key]
    return value


def test_systemd_unit() -> None:
    for name in ("spoolscribe.service", "spoolscribe-fleet.service"):
        u = unit(name)
        assert one(u, "Type") == "notify" and one(u, "KillMode") == "control-group"
        assert one(u, "Restart") == "on-failure"
        assert int(one(u, "WatchdogSec")) > 0 and int(one(u, "TimeoutStopSec")) > 5  # > grace_s: workers first
        assert one(u, "ExecStart").endswith("spool run") and one(u, "UMask") == "0027"


def test_fleet_unit_keeps_state_local_and_the_url_out_of_the_unit() -> None:
    u = unit("spoolscribe-fleet.service")
    env = dict(e.split("=", 1) for e in u["Environment"])
    assert env["SPOOL_STATE_DIR"] == "/var/lib/spoolscribe" and "SPOOL_STORE" not in env
    assert one(u, "EnvironmentFile") == "/etc/spoolscribe/fleet.env"
    assert set(one(u, "ReadWritePaths").split()) == {env["SPOOL_ROOT"], env["SPOOL_STATE_DIR"]}


def test_launchd_plist() -> None:
    plist = plistlib.loads((OPS / "launchd" / "org.spoolscribe.daemon.plist").read_bytes())
    assert plist["ProgramArguments"][1:3] == ["run", "--root"]
    assert plist["KeepAlive"] == {"SuccessfulExit": False} and plist["Umask"] == 0o027


def test_web_unit_runs_spool_web_on_loopback_and_does_not_retry_a_bad_config() -> None:
    u = unit("spoolscribe-web.service")
    env = dict(e.split("=", 1) for e in u["Environment"])
    assert one(u, "ExecStart").endswith("spool web") and env["SPOOL_WEB_LISTEN"].startswith("127.0.0.1:")
    assert one(u, "RestartPreventExitStatus") == "2" and one(u, "UMask") == "0027"
    assert one(u, "ReadWritePaths") == env["SPOOL_ROOT"]
