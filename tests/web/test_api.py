"""The HTTP API against a real daemon: jobs API, SSE, outputs, OpenAI's client, Bazarr's /asr, curl, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Spool, script, wait_for
from tests.web.conftest import Web, start_web


def finished(client: httpx.Client, job_id: str, timeout: float = 30) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        doc: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").json()
        return doc if doc.get("state") in ("succeeded", "failed", "cancelled") else None

    return wait_for(done, timeout, what=f"job {job_id} finished")  # type: ignore[no-any-return]


def sse_events(client: httpx.Client, url: str, n: int, headers: dict[str, str] | None = None) -> list[dict[str, str]]:
    """The first ``n`` events of an SSE stream, parsed as the spec says (id, event, data)."""
    out: list[dict[str, str]] = []
    with client.stream("GET", url, headers=headers, timeout=20) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        ev: dict[str, str] = {}
        for line in r.iter_lines():
            if not line:
                if "data" in ev:
                    out.append(ev)
                    if len(out) >= n:
                        return out
                ev = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                ev[key] = ev.get(key, "") + value.removeprefix(" ")
    return out


def test_jobs_api_answers_201_at_once_then_state_outputs_log_and_events(served: tuple[Spool, Web]) -> None:
    _spool, web = served
    with web.client() as c:
        r = c.post(
            "/api/v1/jobs",
            files={"file": ("talk one.wav", script(duration=3, segments=3), "audio/wav")},
            data={"options": json.dumps({"formats": ["txt", "srt", "vtt", "json"], "language": "en"})},
        )
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        assert r.headers["location"] == f"/api/v1/jobs/{job_id}" and len(job_id) == 12
        assert r.json()["state"] != "inbox"  # recorded by the daemon before the answer
        doc = finished(c, job_id)
        assert doc["state"] == "succeeded" and doc["options"]["language"] == "en"
        assert next(e["type"] for e in doc["events"]) == "job.submitted" and doc["progress"] == 1.0
        assert c.get(f"/api/v1/jobs/{job_id}/outputs/txt").text.strip().startswith("segment 1 of 3.")
        assert "-->" in c.get(f"/api/v1/jobs/{job_id}/outputs/srt").text
        assert c.get(f"/api/v1/jobs/{job_id}/outputs/vtt").text.startswith("WEBVTT")
        assert c.get(f"/api/v1/jobs/{job_id}/outputs/json").json()["text"].startswith("segment 1")
        tsv = c.get(f"/api/v1/jobs/{job_id}/outputs/tsv")  # not written by the job: made from its json
        assert tsv.text.splitlines()[:2] == ["start\tend\ttext", "0\t1000\tsegment 1 of 3."]
        assert "done" in c.get(f"/api/v1/jobs/{job_id}/log", params={"n": 5}).text
        listed = c.get("/api/v1/jobs", params={"state": "succeeded", "limit": 1, "q": "talk one"}).json()
        assert listed["total"] >= 1 and listed["items"][0]["id"] == job_id and len(listed["items"]) == 1
        assert c.get("/api/v1/jobs", params={"state": "nonsense"}).json()["error"]["code"] == "bad_state"

        evs = sse_events(c, f"/api/v1/events?since=0&job={job_id}", 3)
        assert next(e["event"] for e in evs) == "job.submitted"
        positions = [int(e["id"]) for e in evs]
        assert positions == sorted(positions) and json.loads(evs[0]["data"])["stream"] == f"job-{job_id}"
        again = sse_events(c, f"/api/v1/events?job={job_id}", 1, headers={"Last-Event-ID": str(positions[0])})
        assert int(again[0]["id"]) == positions[1]  # resumed just after the last one seen, nothing twice


def test_openai_client_gets_json_text_srt_and_verbose_json(served: tuple[Spool, Web], tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    _, web = served
    audio = tmp_path / "memo.wav"
    audio.write_bytes(script(duration=2, segments=2))
    client = openai.OpenAI(base_url=web.url + "/v1", api_key="unused-on-loopback", max_retries=0)
    with open(audio, "rb") as fh:
        doc = client.audio.transcriptions.create(model="whisper-1", file=fh)
    assert doc.text == "segment 1 of 2. segment 2 of 2."
    with open(audio, "rb") as fh:
        text = client.audio.transcriptions.create(model="whisper-1", file=fh, response_format="text", language="en")
    assert str(text).strip() == "segment 1 of 2. segment 2 of 2."
    with open(audio, "rb") as fh:
        srt = client.audio.transcriptions.create(model="whisper-1", file=fh, response_format="srt", prompt="memo")
    assert "00:00:01,000 --> 00:00:02,000" in str(srt)
    with open(audio, "rb") as fh:
        verbose = client.audio.transcriptions.create(
            model="whisper-1", file=fh, response_format="verbose_json", timestamp_granularities=["word"]
        )
    assert verbose.language == "en" and len(verbose.segments) == 2 and verbose.words


def test_asr_as_bazarr_calls_it_and_detect_language(served: tuple[Spool, Web]) -> None:
    _, web = served
    with web.client() as c:
        # Bazarr decodes with its own ffmpeg and posts raw 16 kHz s16le mono PCM, encode=false, named by the field
        pcm = b"\x00\x01" * 16000 * 2  # two seconds
        params = {"task": "transcribe", "language": "en", "output": "srt", "encode": "false"}
        r = c.post("/asr", params=params, files={"audio_file": ("audio_file", pcm)})
        assert r.status_code == 200, r.text
        assert r.text.startswith("1\n00:00:00,000 --> 00:00:01,000") and r.headers["asr-engine"] == "spoolscribe"
        assert "segment 2 of 2." in r.text  # two seconds of audio, decoded for real (PyAV) by the test engine
        r = c.post("/asr", params={"output": "srt"}, files={"audio_file": ("ep.mkv", script(duration=2, segments=2))})
        assert r.status_code == 200 and "00:00:01,000 --> 00:00:02,000" in r.text
        r = c.post("/asr", params={"output": "tsv"}, files={"audio_file": ("e.wav", script(duration=1))})
        assert r.text.startswith("start\tend\ttext\n0\t1000\t")
        r = c.post("/asr", params={"output": "json"}, files={"audio_file": ("e.wav", script(duration=1))})
        assert r.json()["language"] == "en"
        r = c.post("/detect-language", files={"audio_file": ("e.wav", script(duration=1))})
        assert r.json() == {"detected_language": "english", "language_code": "en", "confidence": None}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_multipart_upload(served: tuple[Spool, Web], tmp_path: Path) -> None:
    _, web = served
    audio = tmp_path / "c.wav"
    audio.write_bytes(script(duration=1))
    out = subprocess.run(
        ["curl", "-sS", "-F", f"file=@{audio}", "-F", "response_format=text", web.url + "/v1/audio/transcriptions"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.strip() == "segment 1 of 1.", out.stderr


def test_errors_are_json_with_a_stable_code_and_nothing_escapes_the_outbox(served: tuple[Spool, Web]) -> None:
    _spool, web = served
    with web.client() as c:
        assert c.get("/api/v1/jobs/0123456789ab").json()["error"]["code"] == "job_not_found"
        assert c.get("/api/v1/jobs/ZZ;drop").json()["error"]["code"] == "job_not_found"
        r = c.post("/api/v1/jobs", files={"file": ("x.wav", b"x")}, data={"options": '{"model": "/etc"}'})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_options")
        r = c.post("/api/v1/jobs", files={"file": ("x.wav.part", b"x")})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "refused_name")
        assert c.post("/api/v1/jobs", data={"a": "b"}).json()["error"]["code"] in ("no_file", "unsupported_media_type")
        r = c.post("/v1/audio/transcriptions", files={"file": ("x.wav", b"x")}, data={"response_format": "mp3"})
        assert r.json()["error"]["code"] == "bad_response_format"
        job = c.post("/api/v1/jobs", files={"file": ("../../../../etc/hosts.wav", script(duration=1))}).json()
        assert job["name"] == "hosts.wav" and finished(c, job["id"])["state"] == "succeeded"
        sneaky = ("..%2F..%2Fspool.toml", "%2e%2e%2f%2e%2e%2fstate%2fspool.db", "%2E%2E", "%252e%252e%252f", "txt%00")
        for fmt in sneaky:
            r = c.get(f"/api/v1/jobs/{job['id']}/outputs/{fmt}")
            assert r.status_code == 404 and "error" in r.json(), (fmt, r.text)
        r = c.post(f"/api/v1/jobs/{job['id']}/cancel")
        assert (r.status_code, r.json()["error"]["code"]) == (409, "not_cancellable")
        assert "Traceback" not in web.output()


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(served: tuple[Spool, Web]) -> None:
    spool, _ = served
    small = start_web(spool, SPOOL_WEB_MAX_UPLOAD_MB="1")
    try:
        before = set(p.name for p in spool.inbox.iterdir())
        body = script(duration=1) + b"\n" + b"0" * (2 << 20)
        with small.client() as c:
            r = c.post("/api/v1/jobs", files={"file": ("big.wav", body)})
        assert (r.status_code, r.json()["error"]["code"]) == (413, "too_large")
        assert set(p.name for p in spool.inbox.iterdir()) == before
        assert list((spool.layout.state / "uploads").iterdir()) == []
    finally:
        small.stop()


def test_a_sync_client_that_goes_away_cancels_nothing(served: tuple[Spool, Web]) -> None:
    spool, web = served
    seen = {j.id for j in spool.jobs()}
    failure: list[BaseException] = []
    gave_up: list[bool] = []

    def impatient() -> None:
        try:
            with httpx.Client(base_url=web.url, timeout=httpx.Timeout(30, read=1.0)) as c:
                slow = script(duration=3, segments=3, delay_s=0.8)
                c.post("/v1/audio/transcriptions", files={"file": ("slow.wav", slow)})
        except httpx.ReadTimeout:
            gave_up.append(True)  # the client hangs up while its job runs
            return
        except BaseException as e:  # anything else is a failure of the test
            failure.append(e)

    t = threading.Thread(target=impatient)
    t.start()
    t.join(30)
    assert not failure and gave_up
    new = wait_for(lambda: [j for j in spool.jobs() if j.id not in seen and j.source == "slow.wav"], 20)
    with web.client() as c:
        doc = finished(c, new[0].id)
    assert doc["state"] == "succeeded" and not doc["cancel_requested"]


def test_cancel_then_retry_through_the_api(served: tuple[Spool, Web]) -> None:
    _spool, web = served
    with web.client() as c:
        job_id = c.post(
            "/api/v1/jobs", files={"file": ("again.wav", script(duration=4, segments=8, delay_s=0.3))}
        ).json()["id"]
        wait_for(lambda: c.get(f"/api/v1/jobs/{job_id}").json()["position_s"] > 0, 20, what="running")
        r = c.post(f"/api/v1/jobs/{job_id}/cancel")
        assert r.status_code == 202 and r.json()["cancel_requested"]
        assert c.post(f"/api/v1/jobs/{job_id}/cancel").status_code in (202, 409)  # twice: one command
        assert finished(c, job_id)["state"] == "cancelled"
        assert c.get(f"/api/v1/jobs/{job_id}/outputs/txt").json()["error"]["code"] == "not_finished"
        wait_for(lambda: c.post(f"/api/v1/jobs/{job_id}/retry").status_code == 202, 10, what="retry accepted")
        doc = wait_for(lambda: (d := c.get(f"/api/v1/jobs/{job_id}").json())["state"] == "succeeded" and d, 30)
        types = [e["type"] for e in doc["events"]]
        assert types.count("job.cancel_requested") == 1 and "job.requeued" in types
        assert c.post(f"/api/v1/jobs/{job_id}/retry").json()["error"]["code"] == "not_retryable"
