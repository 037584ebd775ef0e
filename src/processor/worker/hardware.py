"""Which device and compute type a worker uses: a pure choice, and the facts it is made from.

:func:`select` takes what the machine offers as arguments (CUDA devices
CTranslate2 sees, the compute types it supports there, Apple silicon or
not), so every branch - the GPU ones included - is tested on a CPU machine.
:func:`probe` reads those facts; the daemon asks before it touches an input,
so ``device = "cuda"`` on a machine without one is exit 2 at start, not a
failure per job.

To verify the CUDA branch on a GPU machine (README, "Models and hardware")::

    spool init --root /tmp/gpu-check && spool submit --root /tmp/gpu-check ../shared/audio/jfk.flac
    SPOOL_DEVICE=cuda spool run --root /tmp/gpu-check --once   # exit 2: CTranslate2 sees no GPU
    jq .spoolscribe.device /tmp/gpu-check/outbox/jfk.json       # "cuda:0" (compute_type "float16")
"""

from __future__ import annotations

import platform
import re
import sys
from dataclasses import dataclass

from ground.errors import SpoolError

DEVICES = ("auto", "cpu", "cuda", "metal")  # and cuda:N
COMPUTE_TYPES = ("auto", "int8", "int8_float16", "int8_float32", "int16", "float16", "float32")
_CUDA_N = re.compile(r"^cuda:([0-9]{1,3})$")


class HardwareError(SpoolError):
    """The configured device or compute type does not exist here, or the engine cannot use it."""

    exit_code = 2


@dataclass(frozen=True)
class Hardware:
    """What a worker runs on: ``device`` as the engine names it, its index, the compute type."""

    device: str  # cpu | cuda | metal
    index: int
    compute_type: str

    @property
    def label(self) -> str:
        """As the manifest records it: ``cpu``, ``cuda:1``, ``metal``."""
        return f"cuda:{self.index}" if self.device == "cuda" else self.device


@dataclass(frozen=True)
class Machine:
    """What the machine offers, as the engines see it."""

    cuda_devices: int = 0
    cpu_types: frozenset[str] = frozenset({"int8", "int8_float32", "int16", "float32"})
    cuda_types: frozenset[str] = frozenset()
    apple_silicon: bool = False


def valid_device(value: str) -> bool:
    return value in DEVICES or bool(_CUDA_N.match(value))


def select(engine: str, device: str, compute_type: str, machine: Machine) -> Hardware:
    """The device and compute type for ``engine``: ``auto`` takes the best the machine has.

    faster-whisper: CUDA with float16 when CTranslate2 sees a device, else the
    CPU with int8.  mlx: Metal with float16 on Apple silicon, else the CPU with
    float32 (float16 on a CPU skips BLAS).  Anything asked for that is not
    there is a :class:`HardwareError` naming what is.
    """
    if engine == "test":
        return Hardware("cpu", 0, "float32" if compute_type == "auto" else compute_type)
    if engine == "mlx":
        return _select_mlx(device, compute_type, machine)
    return _select_ct2(device, compute_type, machine)


def _select_ct2(device: str, compute_type: str, machine: Machine) -> Hardware:
    if device == "metal":
        raise HardwareError("device 'metal' is for the mlx engine; faster-whisper runs on cpu or cuda")
    index = 0
    if device == "auto":
        device = "cuda" if machine.cuda_devices > 0 else "cpu"
    elif device.startswith("cuda"):
        match = _CUDA_N.match(device)
        index = int(match.group(1)) if match else 0
        if machine.cuda_devices == 0:
            raise HardwareError(f"device {device!r}: CTranslate2 sees no CUDA device on this machine (use cpu or auto)")
        if index >= machine.cuda_devices:
            raise HardwareError(
                f"device {device!r}: CTranslate2 sees {machine.cuda_devices} CUDA device(s), cuda:0 to "
                f"cuda:{machine.cuda_devices - 1}"
            )
        device = "cuda"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    supported = machine.cuda_types if device == "cuda" else machine.cpu_types
    if supported and compute_type not in supported:
        raise HardwareError(
            f"compute_type {compute_type!r} is not supported on {device} here "
            f"(supported: {', '.join(sorted(supported))})"
        )
    return Hardware(device, index, compute_type)


def _select_mlx(device: str, compute_type: str, machine: Machine) -> Hardware:
    if device.startswith("cuda"):
        raise HardwareError(f"device {device!r}: the mlx engine runs on metal or cpu; use faster-whisper for CUDA")
    if device == "auto":
        device = "metal" if machine.apple_silicon else "cpu"
    if device == "metal" and not machine.apple_silicon:
        raise HardwareError("device 'metal' needs Apple silicon; this machine has none (use cpu or auto)")
    if compute_type == "auto":
        compute_type = "float16" if device == "metal" else "float32"
    if compute_type not in ("float16", "float32"):
        raise HardwareError(f"compute_type {compute_type!r}: the mlx engine computes in float16 or float32")
    return Hardware(device, 0, compute_type)


def apple_silicon() -> bool:
    """Apple silicon (where mlx runs on Metal): the one test, used by engine choice and hardware."""
    return sys.platform == "darwin" and platform.machine() == "arm64"


def probe(engine: str) -> Machine:
    """The machine as ``engine`` sees it; imports CTranslate2 only for faster-whisper."""
    if engine != "faster-whisper":
        return Machine(apple_silicon=apple_silicon())
    import ctranslate2

    count = int(ctranslate2.get_cuda_device_count())
    cuda = frozenset(ctranslate2.get_supported_compute_types("cuda")) if count else frozenset()
    cpu = frozenset(ctranslate2.get_supported_compute_types("cpu"))
    return Machine(cuda_devices=count, cpu_types=cpu, cuda_types=cuda, apple_silicon=apple_silicon())
