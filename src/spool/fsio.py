"""Crash-safe file primitives: the commit point of every file is an fsync'd rename.

Postfix's rule: write, fsync, then rename; a half-written file is never
visible under its final name, and after a crash a rename either happened or
did not.  Directory entries are made durable by fsyncing the directory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
from pathlib import Path

from ground.durable import fsync_dir
from ground.errors import SpoolError
from spool import faults

FILE_MODE = 0o640


class NotRegularFile(SpoolError):
    """The path is a symlink, FIFO, device, socket or directory; we never follow or open those."""

    def __init__(self, path: Path, kind: str) -> None:
        self.kind = kind
        super().__init__(f"{path} is a {kind}, not a regular file; only regular files are transcribed")


def kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "regular file"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def open_regular(path: Path) -> int:
    """Open a regular file for reading without following symlinks or blocking on FIFOs.

    ``lstat`` first, then ``open(O_NOFOLLOW|O_NONBLOCK)`` and ``fstat``: the file
    opened must be the regular file that was looked at.
    """
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(path, kind_of(st.st_mode))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise NotRegularFile(path, "symlink") from e
        raise
    fst = os.fstat(fd)
    if not stat.S_ISREG(fst.st_mode) or (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise NotRegularFile(path, kind_of(fst.st_mode))
    os.set_blocking(fd, True)
    return fd


_TEMP = re.compile(r"^\..*\.[0-9a-f]{8}\.tmp$", re.DOTALL)


def temp_name(final: Path) -> Path:
    """A hidden sibling name: consumers of a directory ignore dot-files."""
    return final.with_name(f".{final.name[:200]}.{secrets.token_hex(4)}.tmp")


def is_temp_name(name: str) -> bool:
    """One of our own temp names (left behind only by a crash mid-write)."""
    return bool(_TEMP.match(name))


def sweep_temps(top: Path) -> list[Path]:
    """Delete our temp files below ``top``; safe only while holding the daemon lock."""
    removed = []
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            if is_temp_name(name):
                path = Path(dirpath) / name
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return removed


def atomic_write(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either the old file or all of the new one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
            faults.point("tmp_write")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def move(src: Path, dst: Path, *, replace: bool = False) -> None:
    """Rename ``src`` to ``dst`` durably, creating parents; copy+fsync+rename across devices.

    Without ``replace`` an existing ``dst`` is never overwritten (``FileExistsError``).
    """
    dst.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    if not replace and os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "destination exists", str(dst))
    try:
        os.rename(src, dst)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        _copy_across(src, dst)
        os.unlink(src)
    fsync_dir(dst.parent)
    if src.parent != dst.parent:
        fsync_dir(src.parent)


# A filesystem or a policy that refuses a hard link (FAT/exFAT, some network mounts, a file of
# another user under fs.protected_hardlinks, too many links): the caller moves instead.
_NO_LINK = frozenset({errno.EPERM, errno.EACCES, errno.EMLINK, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP})


def link(src: Path, dst: Path) -> bool:
    """Give the file ``src`` a second name ``dst`` durably; False where hard links are refused."""
    dst.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError as e:
        if e.errno in _NO_LINK:
            return False
        raise
    fsync_dir(dst.parent)
    return True


def same_file(a: Path, b: Path) -> bool:
    """Whether two names are one inode (neither followed if a symlink)."""
    try:
        sa, sb = os.lstat(a), os.lstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _copy_across(src: Path, dst: Path) -> None:
    tmp = temp_name(dst)
    try:
        with open(src, "rb") as fin, open(tmp, "xb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        shutil.copystat(src, tmp)
        os.rename(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_tree(path: Path) -> None:
    """Delete a work directory; missing is fine (recovery may run this twice)."""
    shutil.rmtree(path, ignore_errors=True)
    if path.parent.exists():
        fsync_dir(path.parent)
