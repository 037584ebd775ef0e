"""Settings: flag > env > spool.toml > default, every value of every source checked, messages naming the source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ground.errors import ConfigError
from processor import config
from processor.config_sources import Locator
from spoolscribe.main import load_settings


def write_toml(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "spool.toml"
    path.write_text(text)
    return path


def load_err(tmp_path: Path, toml: str | None = None, env: dict[str, str] | None = None, **flags: str) -> str:
    if toml is not None:
        write_toml(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        load_settings({"root": str(tmp_path), **flags}, env or {})
    return str(info.value)


def test_defaults_need_nothing(tmp_path: Path) -> None:
    s = load_settings({"root": str(tmp_path)}, {})
    assert s.engine == "auto" and s.model == "tiny.en" and s.workers == 0  # auto: processor.sizing
    assert s.formats == ["txt", "srt", "vtt", "json"]


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    write_toml(tmp_path, "workers = 2\nsettle_s = 5\nmax_attempts = 4\n")
    env = {"SPOOL_WORKERS": "3", "SPOOL_SETTLE_S": "7"}
    s = load_settings({"root": str(tmp_path), "workers": "4"}, env)
    assert s.workers == 4  # flag
    assert s.settle_s == 7.0  # env beats file
    assert s.max_attempts == 4  # file beats default
    assert s.grace_s == 5.0  # default


def test_root_from_env(tmp_path: Path) -> None:
    assert load_settings({}, {"SPOOL_ROOT": str(tmp_path)}).root == tmp_path


def test_bad_choice_names_key_source_and_allowed_values(tmp_path: Path) -> None:
    msg = load_err(tmp_path, env={"SPOOL_ENGINE": "whisper.cpp"})
    assert msg.startswith("config engine ($SPOOL_ENGINE): 'whisper.cpp' is not allowed (allowed: auto, mlx")


def test_bad_type_names_the_environment_variable(tmp_path: Path) -> None:
    assert load_err(tmp_path, env={"SPOOL_WORKERS": "many"}) == (
        "config workers ($SPOOL_WORKERS): 'many' is not a whole number"
    )


def test_a_flag_is_named_as_it_is_typed(tmp_path: Path) -> None:
    msg = load_err(tmp_path, settle_s="-1")
    assert msg == "config settle_s (--settle-s): -1.0 is below the minimum (allowed: >= 0)"


def test_a_file_value_is_named_by_its_line(tmp_path: Path) -> None:
    path = tmp_path / "spool.toml"
    msg = load_err(tmp_path, "# settings\nworkers = 2\n\nsettle_s = nan\n")
    assert msg == f"config settle_s ({path}:4): nan is not a finite number (allowed: >= 0)"


@pytest.mark.parametrize(
    ("toml", "key", "line"),
    [
        ('[profiles.interviews]\nlanguage = "de"\n\n[profiles.bad]\nbeam_size = 99\n', "profiles.bad.beam_size", 5),
        ('[alerts.mine]\nmetric = "queue_depth"\nthreshold = inf\n', "alerts.mine.threshold", 3),
        ('[alerts.mine]\nmetric = "nope"\nthreshold = 1\n', "alerts.mine.metric", 2),
        (
            '[[notify.webhooks]]\nurl = "http://a"\n[[notify.webhooks]]\nurl = "ftp://b"\n',
            "notify.webhooks[1].url",
            4,
        ),
        ("[notify]\nretry_base_s = nan\n", "notify.retry_base_s", 2),
        ('[[notify.commands]]\nargv = ["/bin/x", "a\\u0000b"]\n', "notify.commands[0].argv", 2),
        ('[notify]\nmax_attempts = "x"\n', "notify.max_attempts", 2),
        ('[[notify.webhooks]]\nurl = "http://a"\nevents = [[1]]\n', "notify.webhooks[0].events", 3),
        ('[[notify.webhooks]]\nurl = "http://a"\ntimeout_s = inf\n', "notify.webhooks[0].timeout_s", 3),
        ('[alerts.x]\nmetric = "queue_depth"\nthreshold = 1\nenabled = "no"\n', "alerts.x.enabled", 4),
        ('[alerts.x]\nmetric = "queue_depth"\nthreshold = 1\nmessage = "{value:q}"\n', "alerts.x.message", 4),
        ('[alerts.x]\nmetric = ["queue_depth"]\nthreshold = 1\n', "alerts.x.metric", 2),
    ],
)
def test_sections_are_parsed_completely_at_load_naming_the_line(tmp_path: Path, toml: str, key: str, line: int) -> None:
    msg = load_err(tmp_path, toml)
    assert msg.startswith(f"config {key} ({tmp_path / 'spool.toml'}:{line}): "), msg


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ("workers = true\n", "true is a boolean, not a whole number"),
        ("workers = 2.0\n", "2.0 is a float, not a whole number"),
        ('settle_s = "5"\n', "'5' is text, not a number"),
        ('formats = "txt"\n', "'txt' is text, not a list of names"),
        ("watch = 1\n", "1 is an integer, not true or false"),
        ("engine = 3\n", "3 is an integer, not text"),
        ("settle_s = [1]\n", "[1] is an array, not a number"),
        ("model = { a = 1 }\n", "{'a': 1} is a table, not text"),
        ("workers = 100000000000000000000000000000\n", "is too large"),
        ("settle_s = inf\n", "inf is not a finite number"),
        ("rescan_s = 1e300\n", "is too large"),
        ("rescan_s = 0\n", "0.0 is below the minimum"),
        ("metrics_port = 70000\n", "70000 is above the maximum (allowed: 0 to 65535)"),
        ("recent_s = -0.5\n", "-0.5 is below the minimum"),
        ("log_max_age_days = 1e6\n", "is above the maximum"),
        ('model = "a\\u0001b"\n', "holds the control character '\\x01'"),
        ('metrics_textfile = "/tmp/a\\nb"\n', "holds the control character"),
        ('metrics_addr = "local host"\n', "is not an IP address or host name"),
        ('language = "12"\n', "option 'language' must be"),
        ("formats = []\n", "must name at least one"),
        ('formats = ["txt", "doc"]\n', "'doc' is not allowed (allowed: txt, srt, vtt, tsv, json)"),
    ],
)
def test_types_are_strict_and_ranges_kept(tmp_path: Path, toml: str, problem: str) -> None:
    assert problem in load_err(tmp_path, toml)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "infinity", "1e999", "1_0x", "١٢", ""])
def test_numbers_from_the_environment_are_finite_ascii_numbers(tmp_path: Path, value: str) -> None:
    msg = load_err(tmp_path, env={"SPOOL_SETTLE_S": value})
    assert msg.startswith("config settle_s ($SPOOL_SETTLE_S): ")


def test_undecodable_environment_text_is_refused(tmp_path: Path) -> None:
    raw = os.fsdecode(b"/models/\xff")  # what os.environ holds for a non-UTF-8 value
    assert "is not valid UTF-8 text" in load_err(tmp_path, env={"SPOOL_MODEL": raw})


@pytest.mark.parametrize(
    ("store", "shown"),
    [
        ("sqlite:///var/db/spool.db", "'sqlite://'"),
        ("postgresq://u:secret@h/db", "'postgresq://'"),
        ("/var/db/spool.db", "is not a store URL"),
        ("u:secret@h/db", "is not a store URL"),
    ],
)
def test_store_accepts_only_the_implemented_schemes(tmp_path: Path, store: str, shown: str) -> None:
    msg = load_err(tmp_path, env={"SPOOL_STORE": store})
    assert shown in msg and "postgresql://" in msg and "empty for SQLite" in msg
    assert "secret" not in msg


def test_postgres_urls_and_empty_are_stores(tmp_path: Path) -> None:
    for url in ("", "postgresql://u@h/db", "postgres://h/db"):
        assert load_settings({"root": str(tmp_path)}, {"SPOOL_STORE": url}).store == url


def test_every_source_is_checked_not_only_the_winner(tmp_path: Path) -> None:
    """A bad line hidden today by an environment variable would stop the daemon the day it goes."""
    msg = load_err(tmp_path, "settle_s = -3\n", env={"SPOOL_SETTLE_S": "1"})
    assert f"{tmp_path / 'spool.toml'}:1" in msg


def test_unknown_key_suggests_the_near_one(tmp_path: Path) -> None:
    msg = load_err(tmp_path, "wokers = 2\n")
    assert msg == f"config wokers ({tmp_path / 'spool.toml'}:1): unknown key; did you mean workers?"


def test_tables_have_no_environment_form(tmp_path: Path) -> None:
    msg = load_err(tmp_path, env={"SPOOL_PROFILES": "interviews"})
    assert msg.startswith("config profiles ($SPOOL_PROFILES): is set in spool.toml only")


def test_env_list_form_is_documented_and_accepted(tmp_path: Path) -> None:
    s = load_settings({"root": str(tmp_path)}, {"SPOOL_FORMATS": "txt, json"})
    assert s.formats == ["txt", "json"]
    assert "'doc' is not allowed" in load_err(tmp_path, env={"SPOOL_FORMATS": "doc"})


def test_profiles_are_validated_key_by_key(tmp_path: Path) -> None:
    write_toml(tmp_path, '[profiles.interviews]\nlanguage = "de"\nengine = "mlx"\n')
    s = load_settings({"root": str(tmp_path)}, {})
    assert s.profiles == {"interviews": {"language": "de", "engine": "mlx"}}
    msg = load_err(tmp_path, "[profiles.x]\noutput_dir = '/etc'\n")
    assert msg.startswith("config profiles.x.output_dir (") and "unknown option 'output_dir'" in msg
    assert "folder inside the inbox" in load_err(tmp_path, '[profiles."../up"]\nlanguage = "de"\n')
    assert "must be a table of options" in load_err(tmp_path, "profiles.x = 3\n")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"workers = \n", "is not valid TOML"),
        (b"workers = 2\n\xff\xfe = 1\n", "is not UTF-8 text (line 2"),
        (b"a = " + b"9" * 5000 + b"\n", "is not valid TOML"),
        (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "is not valid TOML"),
    ],
)
def test_a_file_that_cannot_be_parsed_is_one_error(tmp_path: Path, content: bytes, problem: str) -> None:
    (tmp_path / "spool.toml").write_bytes(content)
    msg = load_err(tmp_path)
    assert msg.startswith(f"config {tmp_path / 'spool.toml'}: {problem}"), msg


def test_a_byte_order_mark_is_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "spool.toml").write_bytes(b"\xef\xbb\xbfworkers = 2\n")
    assert load_settings({"root": str(tmp_path)}, {}).workers == 2


def test_a_directory_fifo_or_dangling_link_where_the_file_should_be(tmp_path: Path) -> None:
    path = tmp_path / "spool.toml"
    path.mkdir()
    assert "is a directory" in load_err(tmp_path)
    path.rmdir()
    os.mkfifo(path)  # must not block the start
    assert "not a regular file" in load_err(tmp_path)
    path.unlink()
    path.symlink_to(tmp_path / "gone.toml")
    assert "symlink to a file that does not exist" in load_err(tmp_path)


def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "spool.toml").write_bytes(b"# x\n" * 300_000)
    assert "is larger than" in load_err(tmp_path)


def test_spool_config_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "etc" / "spool.toml"
    msg = load_err(tmp_path, env={"SPOOL_CONFIG": str(missing)})
    assert msg == f"config {missing} ($SPOOL_CONFIG): does not exist"


def test_spool_config_may_set_the_root_but_the_spool_own_file_may_not(tmp_path: Path) -> None:
    etc = tmp_path / "etc.toml"
    etc.write_text(f'root = "{tmp_path / "srv"}"\nworkers = 2\n')
    s = load_settings({}, {"SPOOL_CONFIG": str(etc)})
    assert s.root == tmp_path / "srv" and s.workers == 2
    assert load_settings({"root": str(tmp_path / "x")}, {"SPOOL_CONFIG": str(etc)}).root == tmp_path / "x"
    msg = load_err(tmp_path, 'root = "/elsewhere"\n')
    assert "cannot be set in the spool's own spool.toml" in msg and "spool.toml:1" in msg


def test_an_empty_root_is_not_the_current_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config root \(--root\): '' is not a path"):
        load_settings({"root": ""}, {})


def test_settings_built_directly_are_checked_too(tmp_path: Path) -> None:
    import dataclasses

    s = load_settings({"root": str(tmp_path)}, {})
    with pytest.raises(ConfigError, match="metrics_port: 70000 is above the maximum"):
        dataclasses.replace(s, metrics_port=70000)
    # ops' sections are ops' to check: the root hands the check to every settings load
    from ops.settings_check import check_sections

    with pytest.raises(ConfigError, match=r"alerts\.x\.threshold"):
        check_sections(dataclasses.replace(s, alerts={"x": {"metric": "queue_depth", "threshold": float("nan")}}))


def test_settings_are_immutable(tmp_path: Path) -> None:
    s = load_settings({"root": str(tmp_path)}, {})
    with pytest.raises(AttributeError):
        s.workers = 5  # type: ignore[misc]


def test_locator_finds_keys_past_multiline_values() -> None:
    text = (
        'workers = 2\nmodel = """\n[not.a.table]\nx = 1\n"""\n'
        "formats = [\n  'txt', # a ] bracket\n  'json',\n]\n"
        "[[notify.webhooks]]\nurl = 'a'\n[[notify.webhooks]]\n"
        '"url" = "b"\n[[t]]\n[[t.u]]\nk = 1\n[[t]]\n[[t.u]]\nk = 2\n'
    )
    lines = Locator(text).lines
    assert lines["workers"] == 1 and lines["formats"] == 6
    assert "not.a.table" not in lines and "x" not in lines
    assert lines["notify.webhooks[0].url"] == 11 and lines["notify.webhooks[1].url"] == 13
    assert lines["t[0].u[0].k"] == 16 and lines["t[1].u[0].k"] == 19


def test_every_setting_has_a_type_the_one_path_knows() -> None:
    """A key added to Settings gets parsing and checks from its type alone, so the type must be one of these."""
    from processor import config_check

    for f in config.fields():
        assert config_check.kind(f) in ("bool", "int", "float", "str", "Path", "list", "dict"), (f.name, f.type)
        config_check.check_field(f, getattr(config.Settings(), f.name))  # every default passes its own rules
