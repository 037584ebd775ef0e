"""Model provisioning: the bundled CT2 model converts to exactly the parameters mlx-whisper expects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from processor.worker import models


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.convert_ct2_to_mlx(models.bundled_ct2_dir(), tmp_path_factory.mktemp("m") / "tiny.en-mlx")


def test_every_mlx_parameter_present_with_its_shape_in_fp32(converted: Path) -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_whisper.whisper import ModelDimensions, Whisper

    config = json.loads((converted / "config.json").read_text())
    config.pop("model_type")
    expected = dict(tree_flatten(Whisper(ModelDimensions(**config), mx.float32).parameters()))
    weights = np.load(converted / "weights.npz")
    assert len(expected) == 167
    assert set(weights.files) == set(expected)
    for name, param in expected.items():
        if name == "alignment_heads":  # mlx's default (12 heads) is replaced by tiny.en's tuned 8
            continue
        assert weights[name].shape == tuple(param.shape), name
        assert weights[name].dtype == np.float32, name


def test_alignment_heads_come_from_the_ct2_config(converted: Path) -> None:
    from mlx_whisper.load_models import load_model

    ct2 = json.loads((models.bundled_ct2_dir() / "config.json").read_text())
    assert np.load(converted / "weights.npz")["alignment_heads"].tolist() == ct2["alignment_heads"]
    assert np.array(load_model(str(converted)).alignment_heads).tolist() == ct2["alignment_heads"]


def test_conversion_is_reused_while_the_source_is_unchanged(converted: Path) -> None:
    before = (converted / "weights.npz").stat().st_mtime_ns
    assert models.convert_ct2_to_mlx(models.bundled_ct2_dir(), converted) == converted
    assert (converted / "weights.npz").stat().st_mtime_ns == before


def test_resolve_names_dirs_and_hub_ids(tmp_path: Path, converted: Path) -> None:
    assert models.resolve("tiny.en", tmp_path).bundled
    assert models.resolve(str(converted), tmp_path).format == "mlx"
    offline = {"HF_HUB_CACHE": str(tmp_path / "no-cache"), "HF_HUB_OFFLINE": "1"}
    with pytest.raises(models.ModelError, match=r"not in .* nor in the Hugging Face cache"):
        models.resolve("mlx-community/whisper-tiny", tmp_path, env=offline)  # a repo id, not cached: not guessed
    with pytest.raises(models.ModelError, match="unknown model"):
        models.resolve("nonsense", tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(models.ModelError, match="neither a CTranslate2"):
        models.resolve(str(empty), tmp_path)
    with pytest.raises(models.ModelError, match="faster-whisper needs a CTranslate2"):
        models.for_engine(models.resolve(str(converted), tmp_path), "faster-whisper", tmp_path)


def test_a_non_whisper_ct2_file_is_refused(tmp_path: Path) -> None:
    import struct

    name = b"TransformerSpec"
    (tmp_path / "model.bin").write_bytes(struct.pack("I", 6) + struct.pack("H", len(name) + 1) + name + b"\0")
    with pytest.raises(models.ModelError, match="not Whisper"):
        models.read_ct2(tmp_path / "model.bin")


def test_a_hub_model_offline_is_one_clear_error(tmp_path: Path) -> None:
    env = {"HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}  # passed in: no process env mutated
    with pytest.raises(models.ModelError, match="HF_HUB_OFFLINE forbids a download"):
        models.resolve("someone/not-a-model", tmp_path, env=env, download=True)


def test_a_ct2_header_that_is_not_whisper_is_refused_before_loading(tmp_path: Path) -> None:
    import struct

    name = b"TransformerSpec"
    (tmp_path / "model.bin").write_bytes(struct.pack("I", 6) + struct.pack("H", len(name) + 1) + name + b"\0")
    (tmp_path / "vocabulary.txt").write_text("a\n")
    with pytest.raises(models.ModelError, match="not Whisper"):
        models.check_dir(models.resolve(str(tmp_path), tmp_path))
