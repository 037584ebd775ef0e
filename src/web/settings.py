"""The web face's settings: where it listens and the token, checked with every other setting.

The keys live in :class:`processor.config.Settings` (the ``web_*`` block, so the
environment, spool.toml and the README table treat them like every key);
what only the web face can judge (an ``address:port``, a token file) is checked
here, through ``load(checks=)`` from the composition root, at every command's start.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ground.errors import ConfigError
from processor.config import Settings

LOOPBACK_NAMES = ("localhost",)
MAX_TOKEN_FILE = 4096
MIN_TOKEN = 16  # a shorter token is a password someone will guess


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(value: str, key: str = "web_listen") -> Listen:
    """``host:port``, ``[v6]:port`` or ``:port`` (loopback); the port 1 to 65535."""
    allowed = "e.g. 127.0.0.1:8790, [::1]:8790, 0.0.0.0:8790"
    host, sep, port = value.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(key, f"{value!r} is not address:port", allowed)
    host = host or "127.0.0.1"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not host.replace("-", "").replace(".", "").isalnum() or not host.isascii():
            raise ConfigError(key, f"{value!r}: {host!r} is not an IP address or host name", allowed) from None
    return Listen(host, int(port))


def check_web(settings: Settings) -> None:
    """Every ``web_*`` value judged now, so a mistake stops any command with one line (exit 2)."""
    parse_listen(settings.web_listen)
    if settings.web_token and len(settings.web_token) < MIN_TOKEN:
        raise ConfigError("web_token", f"is shorter than {MIN_TOKEN} characters")  # never echoed: it is a secret


def read_token_file(path: Path) -> str:
    """The first line of ``path``: a regular file, small, not readable by everyone."""
    key = "web_token_file"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise ConfigError(key, f"{path}: cannot be read ({e.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(key, f"{path}: not a regular file")
        if st.st_mode & stat.S_IROTH:
            raise ConfigError(key, f"{path}: readable by everyone; chmod o-r it")
        raw = fh.read(MAX_TOKEN_FILE + 1)
    if len(raw) > MAX_TOKEN_FILE:
        raise ConfigError(key, f"{path}: larger than {MAX_TOKEN_FILE} bytes")
    try:
        token = raw.decode("utf-8").splitlines()[0].strip() if raw.strip() else ""
    except UnicodeDecodeError:
        raise ConfigError(key, f"{path}: not UTF-8 text") from None
    if len(token) < MIN_TOKEN:
        raise ConfigError(key, f"{path}: the token is shorter than {MIN_TOKEN} characters")
    return token


def token_of(settings: Settings) -> str:
    """The token in force: ``web_token`` (e.g. ``$SPOOL_WEB_TOKEN``), else the file's; empty: none."""
    if settings.web_token:
        return settings.web_token
    if settings.web_token_file:
        return read_token_file(Path(settings.web_token_file))
    return ""


class NoToken(ConfigError):
    def __init__(self, listen: Listen, source: str) -> None:
        super().__init__(
            "web_listen",
            f"{listen.host} is not a loopback address and no token is configured",
            "a loopback address, or set $SPOOL_WEB_TOKEN or web_token_file",
            source=source,
        )
