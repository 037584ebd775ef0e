"""Device and compute type selection: every branch, GPU ones included, decided by a pure function."""

from __future__ import annotations

import pytest

from processor.worker.hardware import Hardware, HardwareError, Machine, select, valid_device

CPU_ONLY = Machine()
TWO_GPUS = Machine(cuda_devices=2, cuda_types=frozenset({"float16", "int8_float16", "int8", "float32"}))
MAC = Machine(apple_silicon=True)


@pytest.mark.parametrize(
    ("engine", "device", "compute", "machine", "expected"),
    [
        ("faster-whisper", "auto", "auto", CPU_ONLY, Hardware("cpu", 0, "int8")),
        ("faster-whisper", "auto", "auto", TWO_GPUS, Hardware("cuda", 0, "float16")),
        ("faster-whisper", "cuda", "auto", TWO_GPUS, Hardware("cuda", 0, "float16")),
        ("faster-whisper", "cuda:1", "int8_float16", TWO_GPUS, Hardware("cuda", 1, "int8_float16")),
        ("faster-whisper", "cpu", "auto", TWO_GPUS, Hardware("cpu", 0, "int8")),
        ("faster-whisper", "cpu", "float32", CPU_ONLY, Hardware("cpu", 0, "float32")),
        ("mlx", "auto", "auto", MAC, Hardware("metal", 0, "float16")),
        ("mlx", "auto", "auto", CPU_ONLY, Hardware("cpu", 0, "float32")),
        ("mlx", "cpu", "auto", MAC, Hardware("cpu", 0, "float32")),
        ("mlx", "metal", "float32", MAC, Hardware("metal", 0, "float32")),
    ],
)
def test_auto_takes_the_best_the_machine_has(
    engine: str, device: str, compute: str, machine: Machine, expected: Hardware
) -> None:
    assert select(engine, device, compute, machine) == expected


@pytest.mark.parametrize(
    ("engine", "device", "compute", "machine", "message"),
    [
        ("faster-whisper", "cuda", "auto", CPU_ONLY, "sees no CUDA device"),
        ("faster-whisper", "cuda:2", "auto", TWO_GPUS, "cuda:0 to cuda:1"),
        ("faster-whisper", "cpu", "float16", CPU_ONLY, "not supported on cpu"),
        ("faster-whisper", "metal", "auto", MAC, "for the mlx engine"),
        ("mlx", "cuda", "auto", TWO_GPUS, "use faster-whisper for CUDA"),
        ("mlx", "metal", "auto", CPU_ONLY, "needs Apple silicon"),
        ("mlx", "cpu", "int8", CPU_ONLY, "float16 or float32"),
    ],
)
def test_what_is_not_there_is_one_clear_error(
    engine: str, device: str, compute: str, machine: Machine, message: str
) -> None:
    with pytest.raises(HardwareError, match=message) as info:
        select(engine, device, compute, machine)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_manifest_label_names_the_cuda_index() -> None:
    assert Hardware("cuda", 1, "float16").label == "cuda:1"
    assert Hardware("cpu", 0, "int8").label == "cpu"


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "metal"])
def test_device_spellings(value: str) -> None:
    assert valid_device(value)


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:-1", "cuda:x", "CUDA", "", "cuda:1234"])
def test_device_misspellings(value: str) -> None:
    assert not valid_device(value)
