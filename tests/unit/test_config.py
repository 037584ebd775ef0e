"""Settings: flag > env > spool.toml > default, validated with messages naming key and allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor import config
from schema.errors import ConfigError


def write_toml(root: Path, text: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "spool.toml").write_text(text)


def test_defaults_need_nothing(tmp_path: Path) -> None:
    s = config.load({"root": str(tmp_path)}, {})
    assert s.engine == "auto" and s.model == "tiny.en" and s.workers == 1
    assert s.formats == ["txt", "srt", "vtt", "json"]


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    write_toml(tmp_path, "workers = 2\nsettle_s = 5\nmax_attempts = 4\n")
    env = {"SPOOL_WORKERS": "3", "SPOOL_SETTLE_S": "7"}
    s = config.load({"root": str(tmp_path), "workers": "4"}, env)
    assert s.workers == 4  # flag
    assert s.settle_s == 7.0  # env beats file
    assert s.max_attempts == 4  # file beats default
    assert s.grace_s == 5.0  # default


def test_root_from_env(tmp_path: Path) -> None:
    assert config.load({}, {"SPOOL_ROOT": str(tmp_path)}).root == tmp_path


def test_bad_choice_names_key_and_allowed_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config engine: 'whisper\.cpp' is not allowed \(allowed: auto, mlx"):
        config.load({"root": str(tmp_path)}, {"SPOOL_ENGINE": "whisper.cpp"})


def test_bad_type_names_origin(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config workers: 'many' from \$SPOOL_WORKERS is not a valid int"):
        config.load({"root": str(tmp_path)}, {"SPOOL_WORKERS": "many"})


def test_below_minimum(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="workers: 0 is below the minimum"):
        config.load({"root": str(tmp_path), "workers": "0"}, {})


def test_unknown_key_in_file(tmp_path: Path) -> None:
    write_toml(tmp_path, "wokers = 2\n")
    with pytest.raises(ConfigError, match="config wokers: unknown key"):
        config.load({"root": str(tmp_path)}, {})


def test_broken_toml_is_one_clear_error(tmp_path: Path) -> None:
    write_toml(tmp_path, "workers = \n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        config.load({"root": str(tmp_path)}, {})


def test_formats_from_env_list(tmp_path: Path) -> None:
    s = config.load({"root": str(tmp_path)}, {"SPOOL_FORMATS": "txt, json"})
    assert s.formats == ["txt", "json"]
    with pytest.raises(ConfigError, match="unknown format 'doc'"):
        config.load({"root": str(tmp_path)}, {"SPOOL_FORMATS": "doc"})


def test_profiles_are_validated(tmp_path: Path) -> None:
    write_toml(tmp_path, '[profiles.interviews]\nlanguage = "de"\nengine = "mlx"\n')
    s = config.load({"root": str(tmp_path)}, {})
    assert s.profiles == {"interviews": {"language": "de", "engine": "mlx"}}
    write_toml(tmp_path, "[profiles.x]\noutput_dir = '/etc'\n")
    with pytest.raises(Exception, match="unknown option 'output_dir'"):
        config.load({"root": str(tmp_path)}, {})


def test_settings_are_immutable(tmp_path: Path) -> None:
    s = config.load({"root": str(tmp_path)}, {})
    with pytest.raises(AttributeError):
        s.workers = 5  # type: ignore[misc]
