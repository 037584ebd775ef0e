"""Moving inputs and outputs between the spool's folders, idempotently.

Every function here is safe to run twice: startup recovery re-runs whichever
step a crash interrupted, so "already done" must be success, not an error.
The event announcing a move is always appended before the move (DESIGN.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import stat
import unicodedata
from pathlib import Path
from typing import Any

from spool import fsio, names
from spool.layout import Layout

ERROR_SUFFIX = ".error.json"
# Publishing order: the json manifest last, so its arrival means every format is there.
FORMAT_ORDER = ("txt", "srt", "vtt", "tsv", "json")


def work_input(layout: Layout, job_id: str, source: str) -> Path:
    return layout.job_dir(job_id) / posixpath.basename(source)


def work_sidecar(layout: Layout, job_id: str, source: str) -> Path:
    return layout.job_dir(job_id) / "options.json"


def claim(layout: Layout, job_id: str, source: str, sidecar: str | None, *, keep_name: bool = False) -> Path:
    """Bring ``inbox/source`` (and its sidecar) into ``work/<job>/``; return the input's new path.

    ``keep_name``: a file written in place is claimed by a hard link, so its writer keeps
    writing into it by name (reopen-and-append, one open handle, pauses); the inbox name is
    released only with the job's verdict (:func:`release_name`).  Where links are refused
    it is moved, as a renamed file always is.
    """
    dst = work_input(layout, job_id, source)
    dst.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    src = layout.inbox / source
    if not os.path.lexists(dst) and not (keep_name and fsio.link(src, dst)):
        fsio.move(src, dst)
    if sidecar:
        side_dst = work_sidecar(layout, job_id, source)
        with contextlib.suppress(FileNotFoundError):
            if not os.path.lexists(side_dst):
                fsio.move(layout.inbox / sidecar, side_dst)
    return dst


def release_name(layout: Layout, job_id: str, source: str) -> None:
    """The verdict is final: the inbox name of a file claimed by a link is unlinked (if it is still ours)."""
    held = layout.inbox / source
    if fsio.same_file(held, work_input(layout, job_id, source)):
        os.unlink(held)
        fsio.fsync_dir(held.parent)


def follow_name(layout: Layout, job_id: str, source: str) -> bool:
    """A file held by name was replaced under that name (a new inode): make the job's input the new one.

    True when the input was switched; the job then starts again from the final bytes.
    """
    held, mine = layout.inbox / source, work_input(layout, job_id, source)
    try:
        st = os.lstat(held)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or fsio.same_file(held, mine):
        return False
    tmp = fsio.temp_name(mine)
    if not fsio.link(held, tmp):
        return False
    os.replace(tmp, mine)
    fsio.fsync_dir(mine.parent)
    return True


def unclaim(layout: Layout, job_dir: Path) -> list[str]:
    """Return the inputs of a work dir no job owns to the inbox, so they are taken again."""
    returned = []
    for p in sorted(job_dir.iterdir()):
        if p.is_file() and p.name != "options.json" and not p.name.startswith("."):
            if _still_in_inbox(layout, p):
                continue  # claimed by a link: its inbox name is there already and is taken again
            rel = free_path(layout.inbox, p.name)
            fsio.move(p, layout.inbox / rel)
            returned.append(rel)
    fsio.remove_tree(job_dir)
    return returned


def _still_in_inbox(layout: Layout, path: Path) -> bool:
    st = os.lstat(path)
    if st.st_nlink < 2:
        return False
    for dirpath, _dirs, files in os.walk(layout.inbox):
        for name in files:
            with contextlib.suppress(OSError):
                other = os.lstat(os.path.join(dirpath, name))
                if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                    return True
    return False


def staged_sort_key(name: str) -> int:
    ext = name.rsplit(".", 1)[-1]
    return FORMAT_ORDER.index(ext) if ext in FORMAT_ORDER else len(FORMAT_ORDER) - 1


def output_paths(out_stem: str, staged: list[str]) -> list[str]:
    """Outbox-relative paths the staged files will have: ``<stem>.<ext>``."""
    return [f"{out_stem}.{n.rsplit('.', 1)[-1]}" for n in sorted(staged, key=staged_sort_key)]


def publish(layout: Layout, job_id: str, out_stem: str, staged: list[str]) -> list[str]:
    """Rename every staged output into outbox/ (json last).  Returns outbox-relative paths.

    A staged file that is gone while its outbox file exists was published by an
    earlier run of this same step: skipped.  Replacing an existing outbox file is
    correct only because the outbox name was reserved for this job.
    """
    stage = layout.staging(job_id)
    published = []
    for name in sorted(staged, key=staged_sort_key):
        rel = f"{out_stem}.{name.rsplit('.', 1)[-1]}"
        dst = layout.outbox / rel
        src = stage / name
        if os.path.lexists(src):
            fsio.move(src, dst, replace=True)
        elif not os.path.lexists(dst):
            raise FileNotFoundError(f"staged output {src} is missing and {dst} was never published")
        published.append(rel)
    return published


def outbox_taken(layout: Layout, stem: str) -> bool:
    """Whether an output file already uses ``stem``, on the outbox filesystem's own terms.

    One stat per format and normal form instead of listing a folder that grows
    with every job (listing made each job cost more than the one before). A
    case-insensitive volume (macOS) answers for case twins itself; twins among
    our own outputs are caught by the store's ``out_key`` wherever they live.
    """
    forms = {stem, unicodedata.normalize("NFC", stem), unicodedata.normalize("NFD", stem)}
    return any(os.path.lexists(layout.outbox / f"{form}.{ext}") for form in forms for ext in FORMAT_ORDER)


# failed/<name> sits beside <name>.error.json and <name>.options.json: all three must fit in 255 bytes.
FAILED_SUFFIX_BYTES = len(".options.json")


def free_path(base_dir: Path, rel: str, *, reserve: int = 0) -> str:
    """``rel`` or the first numbered variant that is free in ``base_dir`` (for failed/ and done/).

    ``reserve``: bytes of suffix that will be appended to the name; a longer name is cut
    (its extension kept) so that the numbered variant plus the suffix is still a legal name.
    """
    head, base = posixpath.split(rel)
    root, ext = posixpath.splitext(base)
    if not root:
        root, ext = base, ""
    root = names.fit_bytes(root, 255 - len(" (999)") - len(ext.encode("utf-8", "surrogateescape")) - reserve)

    def taken(candidate: str) -> bool:
        p = base_dir / posixpath.join(head, candidate + ext)
        return os.path.lexists(p) or os.path.lexists(str(p) + ERROR_SUFFIX)

    chosen = names.choose_stem(root, taken)
    return posixpath.join(head, chosen + ext)


def error_doc(*, reason: str, message: str, job: str, attempts: int, source: str, **extra: Any) -> bytes:
    doc = {"reason": reason, "message": message, "job": job, "attempts": attempts, "source": source}
    doc.update({k: v for k, v in extra.items() if v is not None})
    return (json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8", "surrogateescape")


def quarantine(layout: Layout, job_id: str, source: str, failed_rel: str, error: bytes) -> None:
    """Put the input in ``failed/<failed_rel>`` beside ``<name>.error.json``; clean work/."""
    release_name(layout, job_id, source)  # first: a crash must not leave the name to be taken again
    dst = layout.failed / failed_rel
    fsio.atomic_write(Path(str(dst) + ERROR_SUFFIX), error)
    src = work_input(layout, job_id, source)
    if os.path.lexists(src):
        fsio.move(src, dst, replace=True)
    side = work_sidecar(layout, job_id, source)
    if os.path.lexists(side):
        fsio.move(side, Path(str(dst) + ".options.json"), replace=True)
    fsio.remove_tree(layout.job_dir(job_id))


def quarantine_inbox(layout: Layout, source: str, failed_rel: str) -> None:
    """An input that never reached work/ (its claim failed): straight from the inbox into failed/."""
    src = layout.inbox / source
    if os.path.lexists(src):
        fsio.move(src, layout.failed / failed_rel, replace=True)


def finish(layout: Layout, job_id: str, source: str, done_rel: str | None) -> None:
    """After success: the original to ``done/<done_rel>`` (or deleted), then clean work/."""
    release_name(layout, job_id, source)
    src = work_input(layout, job_id, source)
    if os.path.lexists(src):
        if done_rel is None:
            os.unlink(src)
        else:
            fsio.move(src, layout.done / done_rel, replace=True)
    fsio.remove_tree(layout.job_dir(job_id))


def requeue(layout: Layout, job_id: str, source: str, failed_rel: str) -> bool:
    """Bring a failed input back into work/<job>/ for a manual retry.  False if it is gone."""
    src = layout.failed / failed_rel
    dst = work_input(layout, job_id, source)
    if os.path.lexists(dst):
        return True
    if not os.path.lexists(src):
        return False
    fsio.move(src, dst)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(str(src) + ERROR_SUFFIX)
    side = Path(str(src) + ".options.json")
    if os.path.lexists(side):
        fsio.move(side, work_sidecar(layout, job_id, source))
    return True
