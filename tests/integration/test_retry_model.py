"""``spool retry`` after the configuration was fixed runs with the fixed model; ``--keep-model`` keeps the old."""

from __future__ import annotations

import json

from schema import events as ev
from schema.jobs import JobState
from tests.conftest import Spool, script, wait_for


def test_retry_runs_with_the_model_configured_now(spool: Spool) -> None:
    spool.config["SPOOL_MODEL"] = "first"
    daemon = spool.start()
    for name in ("fixed.wav", "kept.wav"):
        spool.drop(name, script(duration=1, segments=1, name=name, attempts={"1": {"mode": "bad_input"}}))
    failed = {j.source: j for j in spool.wait_terminal(2)}
    assert daemon.stop() == 0
    spool.config["SPOOL_MODEL"] = "second"  # the operator fixes the configuration
    spool.start()
    assert "with test second" in spool.cli("retry", failed["fixed.wav"].id, check=True).stdout
    spool.cli("retry", failed["kept.wav"].id, "--keep-model", check=True)
    wait_for(lambda: len([j for j in spool.jobs() if j.state is JobState.succeeded]) == 2, 60, what="both retried")
    store = spool.store()
    try:
        ran = {
            source: [
                r.event.model
                for r in store.read(ev.job_stream(failed[source].id))
                if isinstance(r.event, ev.JobStarted)
            ]
            for source in failed
        }
    finally:
        store.close()
    assert ran == {"fixed.wav": ["first", "second"], "kept.wav": ["first", "first"]}
    manifest = json.loads((spool.layout.outbox / "fixed.json").read_text())["spoolscribe"]
    assert manifest["model"] == "second" and manifest["options"]["model"] == "second"
