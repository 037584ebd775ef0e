"""Engine adapters behind one contract (:mod:`processor.engines.base`)."""

from __future__ import annotations

from pathlib import Path

from processor import models
from processor.engines.base import Engine
from processor.engines.mlx import apple_silicon


def resolve_engine(name: str) -> str:
    """``auto`` -> mlx on Apple silicon, faster-whisper elsewhere (it is ~4x faster on x86 CPUs)."""
    if name == "auto":
        return "mlx" if apple_silicon() else "faster-whisper"
    return name


def make_engine(name: str, model: str, models_dir: Path, threads: int = 0) -> Engine:
    name = resolve_engine(name)
    if name == "test":
        from processor.engines.testing import TestEngine

        return TestEngine(model)
    info = models.resolve(model, models_dir)
    path = models.for_engine(info, name, models_dir)
    if name == "faster-whisper":
        from processor.engines.faster import FasterWhisperEngine

        return FasterWhisperEngine(model, path, threads)
    if name == "mlx":
        from processor.engines.mlx import MlxEngine

        return MlxEngine(model, path, threads)
    raise models.ModelError(f"unknown engine {name!r}")
