"""Naming rules: temp files, sidecars, outbox stems, collisions."""

from __future__ import annotations

import pytest

from spool import names


@pytest.mark.parametrize("name", ["a.wav.part", ".a.wav", "a.wav.tmp", "a.wav~", "x.crdownload"])
def test_temp_names_are_not_inputs(name: str) -> None:
    assert names.is_temp(name) and not names.is_candidate(name)


@pytest.mark.parametrize("name", ["a.wav", "-rf.wav", "noext", "a b.mp3", "über.flac"])
def test_candidates(name: str) -> None:
    assert names.is_candidate(name)


def test_sidecars_and_junk_are_not_inputs() -> None:
    assert not names.is_candidate("a.wav.json")
    assert not names.is_candidate("Thumbs.db")


def test_final_names_of_temp_files() -> None:
    assert names.final_names("a.wav.part") == {"a.wav"}
    assert "a.wav" in names.final_names(".a.wav.Xy12ab")  # rsync
    assert "a.wav" in names.final_names(".a.wav")


def test_stem_keeps_folders_and_drops_one_extension() -> None:
    assert names.stem("a/b/meeting.wav") == "a/b/meeting"
    assert names.stem("meeting.tar.gz") == "meeting.tar"
    assert names.stem("noext") == "noext"


def test_stem_fits_the_longest_output_name_in_255_bytes() -> None:
    long = "é" * 200 + ".wav"  # 400 bytes of name
    stem = names.stem(long)
    assert len((names.numbered(stem, 999) + ".json").encode()) <= 255
    stem.encode("utf-8")  # no broken character at the cut


def test_choose_stem_numbers_collisions() -> None:
    taken = {"m", "m (2)"}
    assert names.choose_stem("m", taken.__contains__) == "m (3)"


def test_collision_key_folds_case_and_unicode_form() -> None:
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    assert names.collision_key(nfc) == names.collision_key(nfd) == names.collision_key("CAFÉ")


@pytest.mark.parametrize("rel", ["../x", "/etc/passwd", "a//b", "a/./b", ""])
def test_unsafe_relative_paths(rel: str) -> None:
    assert not names.is_safe_relative(rel)
