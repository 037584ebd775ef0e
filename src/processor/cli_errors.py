"""How every failure of every command ends: one line on stderr and a documented exit code.

The discipline (README, "Command line"; docs/troubleshooting.md):

==== ===================================================================
0    done
1    a bad request (no such job, a name the daemon ignores, a failed job)
2    bad configuration or usage (a flag, ``$SPOOL_*``, spool.toml)
3    the daemon or the database refuses (or no daemon is running)
4    the operating system refuses (permission, disk full, read-only,
     a missing or uncreatable directory); the message names the path
70   an internal error: a bug; ``--debug`` shows the traceback
130  interrupted (Ctrl-C)
141  stdout was closed (``spool jobs | head``): quiet, like SIGPIPE
==== ===================================================================

Messages are made safe for a terminal here, once: control characters (a
newline in a file name) are escaped, so the line stays one line.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from typing import TextIO

from ground.errors import SpoolError
from schema import checks

OK, BAD_REQUEST, BAD_CONFIG, REFUSED, OS_REFUSED, INTERNAL = 0, 1, 2, 3, 4, 70
INTERRUPTED, BROKEN_PIPE = 130, 141
EXIT_CODES = frozenset({OK, BAD_REQUEST, BAD_CONFIG, REFUSED, OS_REFUSED, INTERNAL, INTERRUPTED, BROKEN_PIPE})
MAX_LINE = 2000

_WHAT = {
    errno.EACCES: ("permission denied", "check the owner and mode of that path, or run as the user owning the spool"),
    errno.EPERM: (
        "operation not permitted",
        "check the owner and mode of that path, or run as the user owning the spool",
    ),
    errno.ENOSPC: ("no space left on the device", "free space and try again"),
    errno.EDQUOT: ("disk quota exceeded", "free space or raise the quota, then try again"),
    errno.EROFS: ("read-only file system", "remount it read-write or use another --root"),
    errno.ENOENT: ("no such file or directory", "check the path (and --root)"),
    errno.ENOTDIR: ("a part of the path is not a directory", "check the path (and --root)"),
    errno.EISDIR: ("is a directory", "name a file"),
    errno.EEXIST: (
        "exists already, as something else (a file where a folder belongs?)",
        "remove it or use another path",
    ),
    errno.ENAMETOOLONG: ("the name is too long", "use a shorter path"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n)"),
    errno.EIO: ("input/output error", "check the disk (dmesg)"),
}


class UsageError(SpoolError):
    """The command line does not parse (argparse's complaint, on one line)."""

    exit_code = BAD_CONFIG

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(f"{message} (`{prog} --help` lists the options)")


def one_line(text: str) -> str:
    """``text`` with control characters escaped and cut to :data:`MAX_LINE`: one line, whatever it quotes."""
    bad = set(checks.control_chars(text))
    out = "".join(repr(c)[1:-1] if c in bad else c for c in text) if bad else text
    return out if len(out) <= MAX_LINE else out[: MAX_LINE - 3] + "..."


def os_message(e: OSError) -> str:
    """An OSError as a sentence naming the path and what to do about it."""
    what, advice = _WHAT.get(e.errno or 0, (e.strerror or type(e).__name__, "check the path and try again"))
    paths = [str(p) for p in (e.filename, e.filename2) if p is not None]
    where = f"{' -> '.join(paths)}: " if paths else ""
    return f"{where}{what}; {advice}"


def report(e: BaseException, *, debug: bool, err: TextIO | None = None) -> int:
    """Print one line for ``e`` (and the traceback when ``debug``); return the exit code."""
    err = err or sys.stderr
    if isinstance(e, SpoolError):
        code, message = e.exit_code, str(e)
    elif isinstance(e, OSError):
        code, message = OS_REFUSED, os_message(e)
    else:
        code = INTERNAL
        message = f"internal error: {type(e).__name__}: {e} (a bug; run with --debug for the traceback)"
    if debug:
        traceback.print_exception(e, file=err)
    err.write(f"spool: error: {one_line(message)}\n")
    return code


def quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's last flush cannot complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # stdout is not a real file (tests capture it): nothing will be flushed to a pipe
