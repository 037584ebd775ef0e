"""Real filesystem limits for tests: a small tmpfs (full disk, no inodes), a read-only one, and permissions.

Root ignores file modes, so a permission test either runs as a normal user or
runs the command with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped
(``setpriv``).  Where the machine cannot do one of these the test skips,
saying why; it never passes without having looked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(mnt: Path, options: str = "size=1m", *, readonly: bool = False) -> Iterator[Path]:
    """A tmpfs at ``mnt`` for the block; unmounted afterwards whatever happened."""
    mnt.mkdir(parents=True, exist_ok=True)
    opts = options + (",ro" if readonly else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); needs root")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def remount_readonly(mnt: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)


def unprivileged() -> list[str]:
    """An argv prefix under which file modes apply (empty when not root); skips when there is none."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file modes cannot be made to apply")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
