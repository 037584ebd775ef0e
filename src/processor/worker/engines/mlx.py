"""mlx-whisper: the default engine on Apple silicon; runs on Linux CPUs through ``mlx[cpu]``.

On a CPU three things decide whether it is usable (measured here: ~1x real
time as installed, ~8x with all three):

* the ``mlx-cpu`` wheel links a reference BLAS; an optimised CBLAS loaded with
  ``RTLD_GLOBAL`` *before* mlx is imported takes its place;
* ``transcribe`` defaults to ``fp16=True``, which on a CPU skips BLAS;
* ``load_model`` does not cast, so the weights must be stored as fp32.

mlx-whisper has no progress callback; its tqdm bar is updated once per 30 s
window, right after that window's segments are appended to ``all_segments``.
We swap the module's tqdm for a small bar that reports the position and reads
the new segments from the caller's frame.  If a future mlx-whisper renames
that local, checkpoints fall back to the end of the file (tests catch it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import importlib
import os
import sys
import sysconfig
from typing import Any, BinaryIO

import processor.worker.engines.longrun as longrun  # the module, not the package: no init cycle
from processor.worker import audio
from processor.worker.engines.base import OnProgress, OnSegments, Transcript
from processor.worker.hardware import apple_silicon

FRAMES_PER_SECOND = 100  # mel frames per second in mlx-whisper


def load_cblas() -> str | None:
    """Load an optimised CBLAS globally so the mlx CPU backend binds to it; its path or None."""
    if sys.platform != "linux":
        return None
    candidates = [os.environ.get("SPOOL_CBLAS", "")]
    found = ctypes.util.find_library("openblas")
    candidates += [
        found or "",
        "libopenblas.so.0",
        "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
        "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
    ]
    site = sysconfig.get_paths()["purelib"]
    candidates += sorted(glob.glob(os.path.join(site, "ctranslate2.libs", "libctranslate2-*.so*")))
    for path in candidates:
        if not path:
            continue
        try:
            lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        if hasattr(lib, "cblas_sgemm"):
            return path
    return None


class _Bar:
    """Stands in for ``tqdm.tqdm`` inside mlx_whisper.transcribe; ``hook`` is set per job."""

    hook: Any = None

    def __init__(self, total: int = 0, **_: Any) -> None:
        self.seen = 0

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        frame = sys._getframe(1)
        segments = frame.f_locals.get("all_segments")
        seek = frame.f_locals.get("seek", 0)
        new = []
        if isinstance(segments, list):
            new = segments[self.seen :]
            self.seen = len(segments)
        if _Bar.hook is not None:
            _Bar.hook(new, float(seek) / FRAMES_PER_SECOND)


class _TqdmShim:
    tqdm = _Bar


def prompt_with_hotwords(options: dict[str, Any]) -> str | None:
    """mlx-whisper has no ``hotwords``: they go before the initial prompt, where Whisper reads context."""
    parts = [str(options.get(k) or "").strip() for k in ("hotwords", "initial_prompt")]
    return " ".join(p for p in parts if p) or None


class MlxEngine:
    name = "mlx"

    def __init__(
        self, model: str, model_path: str, threads: int = 0, *, device: str = "", fp16: bool | None = None
    ) -> None:
        self.model = model
        self._path = model_path
        self._threads = threads
        self._device = device or ("metal" if apple_silicon() else "cpu")
        self._fp16 = apple_silicon() if fp16 is None else fp16
        self._mx: Any = None
        self._transcribe_mod: Any = None
        self.blas: str | None = None

    def load(self) -> dict[str, Any]:
        self.blas = load_cblas()
        if self._threads:
            os.environ.setdefault("OPENBLAS_NUM_THREADS", str(self._threads))
        import mlx.core as mx
        from mlx_whisper.load_models import load_model

        self._mx = mx
        if self._device == "cpu" and apple_silicon():
            mx.set_default_device(mx.cpu)  # device = "cpu" asked for on a Mac
        self._transcribe_mod = importlib.import_module("mlx_whisper.transcribe")
        dtype = mx.float16 if self._fp16 else mx.float32
        model = load_model(self._path, dtype=dtype)
        holder = self._transcribe_mod.ModelHolder
        holder.model, holder.model_path = model, self._path
        self._transcribe_mod.tqdm = _TqdmShim
        return {
            "fp16": self._fp16,
            "blas": self.blas or "reference (slow: install libopenblas0-pthread)",
            "device": self._device,
            "compute_type": "float16" if self._fp16 else "float32",
            "multilingual": bool(model.is_multilingual),
        }

    def probe(self, fh: BinaryIO) -> float:
        return audio.probe(fh)

    def transcribe(
        self,
        fh: BinaryIO,
        duration_s: float,
        options: dict[str, Any],
        *,
        resume_from: float,
        on_progress: OnProgress,
        on_segments: OnSegments,
    ) -> Transcript:
        options = {**options, "initial_prompt": prompt_with_hotwords(options)}  # mlx has no hotwords of its own
        outcome = longrun.run(
            fh,
            duration_s,
            options,
            self._window,
            resume_from=resume_from,
            on_progress=on_progress,
            on_segments=on_segments,
        )
        multilingual = bool(self._transcribe_mod.ModelHolder.model.is_multilingual)
        return Transcript(
            language=outcome.language or ("" if multilingual else "en"),
            segments=outcome.segments,
            info={
                "blas": self.blas,
                "windows": outcome.windows,
                "repeats_dropped": outcome.dropped_repeats,
                "loops_trimmed": outcome.trimmed_loops,
            },
        )

    def _window(self, samples: Any, clips: list[float], decoding: dict[str, Any], emit: longrun.Emit) -> str:
        """One window's speech clips; segments are emitted once per 30 s the decoder finishes."""
        seen = 0

        def on_update(new: list[dict[str, Any]], position: float) -> None:
            nonlocal seen
            seen += len(new)
            emit(new, position)

        self._transcribe_mod.tqdm = _TqdmShim
        _Bar.hook = on_update
        try:
            result = self._transcribe_mod.transcribe(
                samples, path_or_hf_repo=self._path, verbose=False, fp16=self._fp16, clip_timestamps=clips, **decoding
            )
        finally:
            _Bar.hook = None
        if len(result["segments"]) > seen:  # the frame hook found nothing: emit at the end of the window
            emit(result["segments"][seen:], len(samples) / audio.SAMPLE_RATE)
        return str(result["language"])

    def between_jobs(self) -> None:
        if self._mx is not None:
            clear = getattr(self._mx, "clear_cache", None) or self._mx.metal.clear_cache
            clear()
