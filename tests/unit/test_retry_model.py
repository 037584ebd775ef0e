"""``spool retry`` runs with the engine and model configured now; ``--keep-model`` keeps the recorded ones."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from processor import config
from processor.models_cli import retry_options
from schema import events as ev
from schema.jobs import Job, fold
from schema.mapper import decode
from tests.unit.events_fixtures import AT, failed, started, submitted


def history(options: dict[str, Any], source: str = "talks/a.wav") -> list[ev.Event]:
    return [dataclasses.replace(submitted(source=source), options=options), started(), failed(final=True)]


def failed_job(options: dict[str, Any], source: str = "talks/a.wav") -> Job:
    job = fold([(e, AT) for e in history(options, source)])
    assert job is not None
    return job


def test_retry_takes_the_configured_model_and_keeps_the_request(tmp_path: Path) -> None:
    (tmp_path / "spool.toml").write_text('model = "small"\n[profiles.talks]\nmodel = "large-v3"\n')
    settings = config.load({"root": str(tmp_path)}, {"SPOOL_ENGINE": "faster-whisper"})
    job = failed_job({"engine": "faster-whisper", "model": "tiny.en", "language": "de", "formats": ["txt"]})
    changed = retry_options(job, settings, keep_model=False)
    assert changed is not None
    options, key = changed
    assert options["model"] == "large-v3" and options["language"] == "de" and len(key) == 16
    assert retry_options(job, settings, keep_model=True) is None
    elsewhere = retry_options(failed_job({"engine": "faster-whisper", "model": "tiny.en"}, "a.wav"), settings, False)
    assert elsewhere is not None and elsewhere[0]["model"] == "small"


def test_the_requeue_carries_the_new_options_into_the_job() -> None:
    before = history({"engine": "faster-whisper", "model": "tiny.en"})
    requeue = ev.JobRequeued(
        from_path="a.wav", options={"engine": "faster-whisper", "model": "small"}, options_key="k2"
    )
    after = fold([(e, AT) for e in (*before, requeue)])
    assert after is not None and after.options["model"] == "small" and after.options_key == "k2"
    kept = fold([(e, AT) for e in (*before, ev.JobRequeued(from_path="a.wav"))])
    assert kept is not None and kept.options["model"] == "tiny.en"


def test_a_requeue_stored_before_options_existed_still_loads() -> None:
    old = decode("job.requeued", 1, json.dumps({"from_path": "a.wav", "by": "cli"}))
    assert isinstance(old, ev.JobRequeued) and old.options is None
