"""Language codes, subtitle shape and decoding hints: validated at every edge, refused with the source named."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ground.errors import ConfigError
from processor import config, languages
from processor import options as opt


def test_language_codes_are_whispers_and_auto_means_detect() -> None:
    assert opt.validate({"language": "de"}, source="s")["language"] == "de"
    assert opt.validate({"language": "yue"}, source="s")["language"] == "yue"
    assert opt.validate({"language": "auto"}, source="s")["language"] is None
    assert opt.validate({"language": None}, source="s")["language"] is None
    for bad in ("xx", "DE", "german", "", 7, ["en"]):
        with pytest.raises(opt.InvalidOptions, match="Whisper language code"):
            opt.validate({"language": bad}, source="s")


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("max_line_width", 0),
        ("max_line_width", -3),
        ("max_line_width", 42.0),
        ("max_line_width", math.nan),
        ("max_line_width", True),
        ("max_line_width", "42"),
        ("max_line_count", 101),
        ("max_words_per_line", 1001),
        ("highlight_words", 1),
        ("multilingual", "yes"),
        ("hotwords", "a\x00b"),
        ("hotwords", "x" * 2001),
    ],
)
def test_sidecar_values_of_the_wrong_type_or_range_are_refused(key: str, bad: object) -> None:
    with pytest.raises(opt.InvalidOptions, match=f"option '{key}' must be") as info:
        opt.validate({key: bad}, source="meeting.wav.json")
    assert str(info.value).startswith("meeting.wav.json: ")


def test_shape_options_that_would_do_nothing_are_refused_together() -> None:
    base = {"word_timestamps": True}
    opt.check_combination({**base, "max_line_width": 42, "max_line_count": 2}, "s")
    with pytest.raises(opt.InvalidOptions, match="need word_timestamps"):
        opt.check_combination({"word_timestamps": False, "highlight_words": True}, "s")
    with pytest.raises(opt.InvalidOptions, match="max_line_count needs max_line_width"):
        opt.check_combination({**base, "max_line_count": 2}, "s")
    with pytest.raises(opt.InvalidOptions, match="no effect with max_line_width"):
        opt.check_combination({**base, "max_line_width": 42, "max_words_per_line": 5}, "s")


def test_writer_options_are_the_shape_only() -> None:
    shape = opt.writer_options({"max_line_width": 30, "language": "de", "highlight_words": None})
    assert shape == {"max_line_width": 30, "max_line_count": None, "max_words_per_line": None, "highlight_words": False}


def test_new_options_leave_old_duplicate_digests_alone() -> None:
    old = {"engine": "faster-whisper", "model": "tiny.en", "language": None, "task": "transcribe"}
    assert opt.options_key(old) == opt.options_key({**old, "hotwords": None, "multilingual": False})
    assert opt.options_key(old) != opt.options_key({**old, "hotwords": "Kubernetes"})


def test_config_values_are_checked_naming_their_source(tmp_path: Path) -> None:
    def err(env: dict[str, str] | None = None, toml: str = "") -> str:
        (tmp_path / "spool.toml").write_text(toml)
        with pytest.raises(ConfigError) as info:
            config.load({"root": str(tmp_path)}, env or {})
        return str(info.value)

    assert "$SPOOL_MAX_LINE_WIDTH" in err({"SPOOL_MAX_LINE_WIDTH": "-1"}) and "below the minimum" in err(
        {"SPOOL_MAX_LINE_WIDTH": "-1"}
    )
    assert "is not a whole number" in err({"SPOOL_MAX_LINE_COUNT": "nan"})
    assert "spool.toml:1" in err(toml='max_line_width = "42"') and "not a whole number" in err(
        toml='max_line_width = "42"'
    )
    assert "spool.toml:1" in err(toml='language = "xx"')
    assert "$SPOOL_DEVICE" in err({"SPOOL_DEVICE": "gpu"}) and "not a device" in err({"SPOOL_DEVICE": "gpu"})
    assert "$SPOOL_COMPUTE_TYPE" in err({"SPOOL_COMPUTE_TYPE": "fp16"})
    assert "needs max_line_width" in err({"SPOOL_MAX_LINE_COUNT": "2"})
    assert "need word_timestamps" in err(toml="highlight_words = true\nword_timestamps = false")
    line = err(toml="[profiles.talks]\nmax_line_count = 2\n")
    assert "profiles.talks" in line and "needs max_line_width" in line


def test_config_defaults_reach_the_job_options(tmp_path: Path) -> None:
    s = config.load(
        {"root": str(tmp_path)},
        {"SPOOL_LANGUAGE": "auto", "SPOOL_MAX_LINE_WIDTH": "42", "SPOOL_HOTWORDS": "Kubernetes", "SPOOL_DEVICE": "cpu"},
    )
    d = s.job_defaults
    assert d["language"] is None and d["max_line_width"] == 42 and d["hotwords"] == "Kubernetes"
    assert d["max_line_count"] is None and d["highlight_words"] is False
    assert s.device == "cpu" and s.compute_type == "auto"


def test_an_english_only_model_refuses_other_languages_and_translation() -> None:
    assert languages.unsupported({"language": "en"}, "tiny.en", False) is None
    assert languages.unsupported({"language": None}, "tiny.en", False) is None
    reason, message = languages.unsupported({"language": "de"}, "tiny.en", False) or ("", "")
    assert reason == "language_unsupported" and "tiny.en" in message and "'de'" in message
    assert (languages.unsupported({"task": "translate"}, "base.en", False) or ("",))[0] == "task_unsupported"
    assert languages.unsupported({"language": "de", "task": "translate"}, "small", True) is None
    assert languages.unsupported({"language": "de"}, "mystery", None) is None  # unknown: as before


ISSUE_13_KEYS = (
    *("model", "language", "task", "device", "compute_type", "multilingual", "initial_prompt", "hotwords"),
    *("max_line_width", "max_line_count", "max_words_per_line", "highlight_words"),
)


def test_every_option_is_in_run_help_and_the_readme_table() -> None:
    from processor import cli
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    parser = cli._parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    run_help = sub.choices["run"].format_help()  # type: ignore[index]
    for key in ISSUE_13_KEYS:
        assert "--" + key.replace("_", "-") in run_help, key
        assert f"| `{key}` | `SPOOL_{key.upper()}` |" in readme, key


def test_the_manifest_says_whether_the_language_was_detected_and_how_sure() -> None:
    from processor.worker.main import detection_facts

    facts = {"multilingual": True, "device": "cuda:0", "compute_type": "float16"}
    found = detection_facts({"language": None}, {"language_probability": 0.93}, facts)
    assert (found["language_detected"], found["language_probability"], found["device"]) == (True, 0.93, "cuda:0")
    assert detection_facts({"language": "de"}, {"language_probability": 1.0}, facts)["language_detected"] is False
    english_only = detection_facts({"language": None}, {"language_probability": 1.0}, {"multilingual": False})
    assert english_only["language_detected"] is False and english_only["language_probability"] is None


def test_the_writers_take_the_jobs_shape(tmp_path: Path) -> None:
    from processor.worker import outputs

    text = "ask not what your country can do for you"
    words = [
        {"word": f" {w}", "start": i * 0.5, "end": i * 0.5 + 0.4, "probability": 0.9}
        for i, w in enumerate(text.split())
    ]
    result = {
        "text": text,
        "segments": [{"id": 0, "start": 0.0, "end": 4.5, "text": " " + text, "words": words}],
        "language": "en",
        "spoolscribe": {"options": {"max_words_per_line": 3, "word_timestamps": True}},
    }
    outputs.render(result, ["srt"], tmp_path)
    cues = [c.splitlines()[2:] for c in (tmp_path / "transcript.srt").read_text().strip().split("\n\n")]
    assert [len(" ".join(lines).split()) for lines in cues] == [3, 3, 3]
