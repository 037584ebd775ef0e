"""Whisper model names as the peers accept them, and the Hugging Face cache they live in.

A name (``small``, ``large-v3-turbo``, ``distil-large-v3``, ``tiny.en``...)
stands for the CTranslate2 repo faster-whisper's own CLI downloads for it, so
a machine that ever ran faster-whisper, whisper-ctranslate2 or Subgen already
has the weights in its cache.  The mlx engine takes the same CTranslate2
weights and converts them once (:func:`processor.worker.models.convert_ct2_to_mlx`),
so one name means the same model on both engines.

The cache is read here, by our own code and without network, in the layout
``huggingface_hub`` writes (https://huggingface.co/docs/hub/local-cache)::

    $HF_HUB_CACHE (else $HF_HOME/hub, else ~/.cache/huggingface/hub)/
      models--Systran--faster-whisper-small/
        refs/main            the commit the "main" branch pointed at
        snapshots/<commit>/  the files (symlinks into blobs/)

Only a download goes through ``huggingface_hub`` itself, and only where
``HF_HUB_OFFLINE`` does not forbid it.  Environment values are passed in
(``env``), never read behind the caller's back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# name -> Hub repo (CTranslate2 format); the table of faster-whisper 1.2's utils._MODELS
NAMES: dict[str, str] = {
    "tiny.en": "Systran/faster-whisper-tiny.en",
    "tiny": "Systran/faster-whisper-tiny",
    "base.en": "Systran/faster-whisper-base.en",
    "base": "Systran/faster-whisper-base",
    "small.en": "Systran/faster-whisper-small.en",
    "small": "Systran/faster-whisper-small",
    "medium.en": "Systran/faster-whisper-medium.en",
    "medium": "Systran/faster-whisper-medium",
    "large-v1": "Systran/faster-whisper-large-v1",
    "large-v2": "Systran/faster-whisper-large-v2",
    "large-v3": "Systran/faster-whisper-large-v3",
    "large": "Systran/faster-whisper-large-v3",
    "distil-small.en": "Systran/faster-distil-whisper-small.en",
    "distil-medium.en": "Systran/faster-distil-whisper-medium.en",
    "distil-large-v2": "Systran/faster-distil-whisper-large-v2",
    "distil-large-v3": "Systran/faster-distil-whisper-large-v3",
    "distil-large-v3.5": "distil-whisper/distil-large-v3.5-ct2",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
    "turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
}
_TRUE = ("1", "true", "yes", "on")


def is_repo_id(name: str) -> bool:
    """``owner/name`` as the Hub spells repos: one slash, no path-like start, no spaces."""
    if name.count("/") != 1 or name.startswith(("/", ".", "~")) or name.endswith("/"):
        return False
    return all(part and all(c.isalnum() or c in "._-" for c in part) for part in name.split("/"))


def repo_for(name: str) -> str | None:
    """The Hub repo a model name or repo id stands for; None when it is neither."""
    if name in NAMES:
        return NAMES[name]
    return name if is_repo_id(name) else None


def cache_dir(env: Mapping[str, str]) -> Path:
    """Where huggingface_hub keeps its cache: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else the default."""
    if env.get("HF_HUB_CACHE"):
        return Path(os.path.expanduser(env["HF_HUB_CACHE"]))
    if env.get("HUGGINGFACE_HUB_CACHE"):  # the older spelling, still honoured by huggingface_hub
        return Path(os.path.expanduser(env["HUGGINGFACE_HUB_CACHE"]))
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(os.path.expanduser(home)) / "hub"


def offline(env: Mapping[str, str]) -> bool:
    """``HF_HUB_OFFLINE`` (or the older ``TRANSFORMERS_OFFLINE``) set: never touch the network."""
    return any(env.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def repo_folder(repo: str, env: Mapping[str, str]) -> Path:
    return cache_dir(env) / ("models--" + repo.replace("/", "--"))


def cached_snapshot(repo: str, env: Mapping[str, str]) -> Path | None:
    """The snapshot ``refs/main`` names; else the most recent complete-looking one; None if absent.

    A snapshot counts only if it holds a model file: an interrupted download
    leaves a folder with a config.json and nothing else.
    """
    folder = repo_folder(repo, env)
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return None
    try:
        rev = (folder / "refs" / "main").read_text().strip()
    except OSError:
        rev = ""
    if rev and _has_weights(snapshots / rev):
        return snapshots / rev
    found = [p for p in snapshots.iterdir() if _has_weights(p)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _has_weights(path: Path) -> bool:
    return any((path / w).is_file() for w in ("model.bin", "weights.safetensors", "weights.npz"))


def download(repo: str, env: Mapping[str, str]) -> Path:
    """Fetch ``repo`` into the cache with huggingface_hub (its tqdm bar on stderr); the snapshot path.

    Raises whatever huggingface_hub raises; the caller words it.
    """
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id=repo, cache_dir=str(cache_dir(env))))


def cached_repos(env: Mapping[str, str]) -> list[tuple[str, Path]]:
    """Every model repo in the cache with a usable snapshot, as (repo id, snapshot)."""
    root = cache_dir(env)
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.glob("models--*")):
        repo = folder.name.removeprefix("models--").replace("--", "/", 1)
        snap = cached_snapshot(repo, env)
        if snap is not None:
            out.append((repo, snap))
    return out
