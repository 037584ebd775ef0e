"""Pure naming rules: which names are inputs, temp files or sidecars, and outbox stems.

Names are ``str`` decoded with ``surrogateescape`` (``os.fsdecode``), so a
non-UTF-8 byte name passes through unchanged; nothing here touches the disk.
"""

from __future__ import annotations

import posixpath
import unicodedata
from collections.abc import Callable

# Producers write under one of these and rename when complete (the hand-off contract).
TEMP_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".download", ".filepart", "~")
# Files that operating systems drop into folders by themselves.
JUNK_NAMES = frozenset({"Thumbs.db", "desktop.ini", "Icon\r", ".DS_Store"})
SIDECAR_SUFFIX = ".json"
# Room left in a 255-byte name for " (999)" and the longest output extension ".json".
MAX_STEM_BYTES = 255 - len(" (999)") - len(".json")


def is_temp(name: str) -> bool:
    """A file still being written under the rename convention (``x.part``, ``.x``)."""
    return name.startswith(".") or name.endswith(TEMP_SUFFIXES)


def is_sidecar(name: str) -> bool:
    return name.endswith(SIDECAR_SUFFIX)


def is_ignored(name: str) -> bool:
    return name in JUNK_NAMES


def is_candidate(name: str) -> bool:
    """A name that, once settled, becomes a job (everything but temp, junk and sidecars)."""
    return bool(name) and not (is_temp(name) or is_ignored(name) or is_sidecar(name))


def final_names(temp_name: str) -> set[str]:
    """Names a temp file may be renamed to: ``x.wav.part`` -> ``x.wav``; ``.x.wav.Ab12`` -> ``x.wav``."""
    out = set()
    for suffix in TEMP_SUFFIXES:
        if temp_name.endswith(suffix) and len(temp_name) > len(suffix):
            out.add(temp_name[: -len(suffix)])
    if temp_name.startswith(".") and len(temp_name) > 1:
        bare = temp_name[1:]
        out.add(bare)
        head, dot, _ = bare.rpartition(".")
        if dot and head:
            out.add(head)  # rsync: .name.XXXXXX
    return {n for n in out if is_candidate(n)}


def sidecar_of(rel: str) -> str:
    return rel + SIDECAR_SUFFIX


def stem(rel: str) -> str:
    """``a/b/meeting.wav`` -> ``a/b/meeting``; names without an extension stay whole."""
    head, base = posixpath.split(rel)
    root, ext = posixpath.splitext(base)
    base = root if root and ext else base
    return posixpath.join(head, _fit(base)) if head else _fit(base)


def _fit(base: str) -> str:
    return fit_bytes(base, MAX_STEM_BYTES)


def fit_bytes(base: str, limit: int) -> str:
    """``base`` cut to at most ``limit`` bytes of its file-system encoding, never mid-character."""
    raw = base.encode("utf-8", "surrogateescape")
    if len(raw) <= limit:
        return base
    cut = raw[: max(1, limit)]
    # Drop a partial UTF-8 sequence at the cut rather than produce a broken character.
    return cut.decode("utf-8", "ignore") if _valid_utf8(raw) else cut.decode("utf-8", "surrogateescape")


def _valid_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def collision_key(name: str) -> str:
    """Names equal under this key would be one file on macOS (case, NFC/NFD)."""
    return unicodedata.normalize("NFC", name).casefold()


def numbered(stem_: str, n: int) -> str:
    return stem_ if n == 1 else f"{stem_} ({n})"


def choose_stem(candidate: str, taken: Callable[[str], bool], limit: int = 999) -> str:
    """The first of ``candidate``, ``candidate (2)``, ... that ``taken`` says is free."""
    for n in range(1, limit + 1):
        s = numbered(candidate, n)
        if not taken(s):
            return s
    raise ValueError(f"more than {limit} outputs are named like {candidate!r}")


def is_safe_relative(rel: str) -> bool:
    """A relative path with no ``..``, no absolute part and no empty component."""
    if not rel or rel.startswith("/") or "\x00" in rel:
        return False
    parts = rel.split("/")
    return all(p not in ("", ".", "..") for p in parts)


# Characters a terminal acts on instead of showing: C0 controls, DEL, C1 controls (U+009B is an
# escape sequence on some terminals), and the bidirectional/format controls that reorder what is shown.
UNSAFE = {*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def display(name: str) -> str:
    """A name as text: non-UTF-8 bytes (surrogate-escaped) become U+FFFD; for JSON, logs and HTML."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def printable(text: str, keep: str = "") -> str:
    """``text`` safe to write to a terminal: every control character shown as an escape (``\\x1b``).

    ``keep``: control characters to leave as they are (``"\\n\\t"`` for multi-line output).
    """
    text = display(text)
    if not any(ord(c) in UNSAFE for c in text):
        return text
    out = []
    for c in text:
        code = ord(c)
        if code not in UNSAFE or c in keep:
            out.append(c)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out)


def json_safe(text: str) -> str:
    """JSON text for a terminal: C1 and bidirectional controls as ``\\uXXXX`` (JSON escapes C0 itself)."""
    return "".join(f"\\u{ord(c):04x}" if ord(c) in UNSAFE and c not in "\n\t" else c for c in text)
