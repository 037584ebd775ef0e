"""Engine adapters behind one contract (:mod:`processor.worker.engines.base`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from processor.worker import models
from processor.worker.engines.base import Engine
from processor.worker.hardware import Hardware, apple_silicon
from processor.worker.lanes import Lanes


def resolve_engine(name: str) -> str:
    """``auto`` -> mlx on Apple silicon, faster-whisper elsewhere (it is ~4x faster on x86 CPUs)."""
    if name == "auto":
        return "mlx" if apple_silicon() else "faster-whisper"
    return name


def make_engine(
    name: str,
    model: str,
    models_dir: Path,
    threads: int = 0,
    hardware: Hardware | None = None,
    env: Mapping[str, str] | None = None,
    lanes: Lanes | None = None,
    batch: int = 1,
) -> Engine:
    """The engine ``name`` with ``model`` resolved offline (the daemon fetched it before, if it had to)."""
    name = resolve_engine(name)
    if name == "test":
        from processor.worker.engines.testing import TestEngine

        return TestEngine(model)
    info = models.resolve(model, models_dir, engine=name, env=env)
    path = models.for_engine(info, name, models_dir)
    if name == "faster-whisper":
        from processor.worker.engines.faster import FasterWhisperEngine

        hw = hardware or Hardware("cpu", 0, "int8")
        return FasterWhisperEngine(
            model, path, threads, hw.compute_type, device=hw.device, device_index=hw.index, lanes=lanes, batch=batch
        )
    if name == "mlx":
        from processor.worker.engines.mlx import MlxEngine

        hw = hardware or Hardware("metal" if apple_silicon() else "cpu", 0, "float16" if apple_silicon() else "float32")
        return MlxEngine(model, path, threads, device=hw.device, fp16=hw.compute_type == "float16")
    raise models.ModelError(f"unknown engine {name!r}")
