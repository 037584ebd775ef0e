"""Where configuration values come from, and how each source is named in a message.

Three sources besides the defaults: command-line flags (``--settle-s``),
the environment (``$SPOOL_SETTLE_S``) and a TOML file (``spool/spool.toml:12``).
tomllib gives no positions, so :class:`Locator` finds the line of every key
in the file's text itself; a message then points at the line to fix.

The file is read once, as bytes, with the limits of an input from the world:
a regular file (a FIFO would block, a device never end), at most
:data:`MAX_BYTES`, UTF-8, valid TOML.  Every way that fails is one
:class:`ConfigError`; a file named by ``$SPOOL_CONFIG`` that is missing is one
too (silently running on defaults would hide the mistake).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ground.errors import ConfigError

ENV_PREFIX = "SPOOL_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Given:
    """One value as a source gave it: ``text`` values are parsed, others must have the field's type."""

    value: Any
    source: str
    text: bool


def env_label(name: str) -> str:
    return f"${ENV_PREFIX}{name.upper()}"


def flag_label(name: str) -> str:
    return "--" + name.replace("_", "-")


def from_flags(flags: Mapping[str, Any]) -> dict[str, Given]:
    return {k: Given(v, flag_label(k), isinstance(v, str)) for k, v in flags.items() if v is not None}


def from_env(env: Mapping[str, str], names: list[str]) -> dict[str, Given]:
    out = {}
    for name in names:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            out[name] = Given(raw, env_label(name), True)
    return out


@dataclass(frozen=True)
class ConfigFile:
    """A parsed TOML file and where each of its keys is."""

    path: Path | None
    values: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    def label(self, key: str) -> str:
        """``path:line`` of ``key`` (or of its nearest enclosing table), else the path."""
        probe = key
        while probe:
            if probe in self.lines:
                return f"{self.path}:{self.lines[probe]}"
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return str(self.path)

    def given(self) -> dict[str, Given]:
        return {k: Given(v, self.label(k), False) for k, v in self.values.items()}


def read(path: Path, *, required: bool, named_by: str | None = None) -> ConfigFile:
    """Read and parse ``path``; a missing file is empty unless ``required``."""
    key = str(path)
    raw = _read_bytes(path, required, key, named_by)
    if raw is None:
        return ConfigFile(None)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ConfigError(key, f"is not UTF-8 text (line {line}, byte {e.start}); save it as UTF-8") from None
    text = text.removeprefix("\ufeff")  # a byte order mark, as some Windows editors write
    try:
        values = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as e:  # ValueError: e.g. an integer of 5000 digits
        raise ConfigError(key, f"is not valid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(key, "is not valid TOML: arrays or tables nested too deeply") from None
    return ConfigFile(path, values, Locator(text).lines)


def _read_bytes(path: Path, required: bool, key: str, named_by: str | None) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):  # no such file, or a part of the path is a file
        if os.path.lexists(path):
            raise ConfigError(key, "is a symlink to a file that does not exist", source=named_by) from None
        if required:
            raise ConfigError(key, "does not exist", source=named_by) from None
        return None
    except OSError as e:
        what = "is a directory, not a file" if e.errno == errno.EISDIR else f"cannot be read: {e.strerror}"
        raise ConfigError(key, what, source=named_by) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise ConfigError(key, f"is {kind}; the configuration must be a file", source=named_by)
        if st.st_size > MAX_BYTES:
            raise ConfigError(key, f"is larger than {MAX_BYTES} bytes; is it the right file?", source=named_by)
        chunks, size = [], 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_BYTES:
            raise ConfigError(key, f"is larger than {MAX_BYTES} bytes; is it the right file?", source=named_by)
        return b"".join(chunks)
    except OSError as e:
        raise ConfigError(key, f"cannot be read: {e.strerror}", source=named_by) from None
    finally:
        os.close(fd)


_BARE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\", "e": "\x1b"}


class Locator:
    """The line of every key in a TOML text that tomllib has already accepted.

    Keys are named as messages name them: parts joined by ``.``, elements of an
    array of tables as ``name[i]`` (``notify.webhooks[0].url``).  A key inside
    an inline table or array is found as its enclosing key.  Because the text
    is valid TOML, the scanner only has to skip values, never to judge them.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines: dict[str, int] = {}
        self._counts: dict[str, int] = {}
        self._scan()

    def _line(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def _note(self, key: str, pos: int) -> None:
        self.lines.setdefault(key, self._line(pos))

    def _scan(self) -> None:
        table = ""
        i, n = 0, len(self.text)
        while i < n:
            i = self._skip_space(i, newlines=True)
            if i >= n:
                break
            c = self.text[i]
            if c == "#":
                i = self._line_end(i)
            elif c == "[":
                table, i = self._header(i)
            else:
                parts, i = self._key(i)
                self._register(table, parts, i)
                i = self._skip_value(self._skip_space(i + 1))  # past '='

    def _header(self, i: int) -> tuple[str, int]:
        array = self.text.startswith("[[", i)
        start = i
        parts, i = self._key(i + (2 if array else 1))
        canon = ""
        for depth, part in enumerate(parts):
            canon = f"{canon}.{part}" if canon else part
            if array and depth == len(parts) - 1:
                self._counts[canon] = self._counts.get(canon, 0) + 1
                self._note(canon, start)
            if canon in self._counts:
                canon += f"[{self._counts[canon] - 1}]"
            self._note(canon, start)
        return canon, self._line_end(i)

    def _register(self, table: str, parts: list[str], pos: int) -> None:
        canon = table
        for part in parts:
            canon = f"{canon}.{part}" if canon else part
            self._note(canon, pos)

    def _key(self, i: int) -> tuple[list[str], int]:
        """A dotted key starting at ``i``; returns its parts and the index of what follows it."""
        parts = []
        while True:
            i = self._skip_space(i)
            c = self.text[i]
            if c in "\"'":
                part, i = self._string(i)
            else:
                m = _BARE.match(self.text, i)
                part, i = (m.group(), m.end()) if m else ("", i)
            parts.append(part)
            i = self._skip_space(i)
            if i < len(self.text) and self.text[i] == ".":
                i += 1
                continue
            return parts, i

    def _string(self, i: int) -> tuple[str, int]:
        """A quoted string (basic or literal, one- or multi-line) at ``i``; its value and the index after it."""
        t = self.text
        quote = t[i]
        triple = t.startswith(quote * 3, i)
        delim = quote * 3 if triple else quote
        j = i + len(delim)
        out = []
        while j < len(t):
            if quote == '"' and t[j] == "\\":
                code = t[j + 1 : j + 2]
                width = {"u": 4, "U": 8}.get(code, 0)
                digits = t[j + 2 : j + 2 + width]
                out.append(chr(int(digits, 16)) if width else _ESCAPES.get(code, ""))
                j += 2 + width
                continue
            if t.startswith(delim, j):
                end = j + len(delim)
                while triple and t.startswith(quote, end):  # up to two quotes may close a triple string
                    out.append(quote)
                    end += 1
                return "".join(out), end
            out.append(t[j])
            j += 1
        return "".join(out), j

    def _skip_value(self, i: int) -> int:
        """The index just past the value at ``i`` (strings, nested arrays and inline tables included)."""
        t, depth = self.text, 0
        while i < len(t):
            c = t[i]
            if c in "\"'":
                _, i = self._string(i)
                continue
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
            elif c == "#":
                i = self._line_end(i)
                continue
            elif c == "\n" and depth <= 0:
                return i
            i += 1
        return i

    def _skip_space(self, i: int, newlines: bool = False) -> int:
        spaces = " \t\r\n" if newlines else " \t"
        while i < len(self.text) and self.text[i] in spaces:
            i += 1
        return i

    def _line_end(self, i: int) -> int:
        end = self.text.find("\n", i)
        return len(self.text) if end < 0 else end
