"""Render a transcript into every requested format with the engine library's own writers.

mlx-whisper ships openai-whisper's writers (txt, srt, vtt, tsv, json).  They are
loaded from their file rather than through ``import mlx_whisper``, whose package
``__init__`` imports mlx: a faster-whisper worker need not pay for MLX.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from processor.options import writer_options
from spool import fsio


@functools.cache
def writers() -> ModuleType:
    spec = importlib.util.find_spec("mlx_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("mlx-whisper is not installed; its writers render the outputs")
    path = Path(next(iter(spec.submodule_search_locations))) / "writers.py"
    mod_spec = importlib.util.spec_from_file_location("spoolscribe_whisper_writers", path)
    assert mod_spec is not None and mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


def text_of(segments: list[dict[str, Any]]) -> str:
    return "".join(s["text"] for s in segments).strip()


def render(result: dict[str, Any], formats: list[str], stage: Path, stem: str = "transcript") -> list[str]:
    """Write ``<stem>.<fmt>`` for each format into ``stage``, each durably; return the names.

    Each file is written by the library's writer to a hidden temp name, fsync'd
    and renamed: a staged file is complete or absent.  The subtitle shape
    (``max_line_width`` & co.) is the job's, read from the manifest's options,
    so a duplicate re-rendered for another job takes that job's shape.
    """
    stage.mkdir(parents=True, exist_ok=True, mode=0o750)
    mod = writers()
    shape = writer_options(result.get("spoolscribe", {}).get("options") or {})
    names = []
    for fmt in formats:
        writer = mod.get_writer(fmt, str(stage))
        # The writer names its file <name>.<fmt>; a dot-name keeps it hidden until renamed.
        writer(result, f".{stem}", dict(shape))
        tmp = stage / f".{stem}.{fmt}"
        final = stage / f"{stem}.{fmt}"
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        names.append(final.name)
    fsio.fsync_dir(stage)
    return names
