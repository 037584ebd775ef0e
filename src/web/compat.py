"""Drop-in faces for the clients people run: OpenAI's ``/v1/audio/*`` and whisper-asr-webservice's ``/asr``.

Both are synchronous: the upload becomes a job like any other (handed over,
recorded, run by the daemon), and the request waits on that job's id until it
ends or ``web_sync_timeout_s`` passes (504 with the job id; the job goes on).
Waiting is reading the store, so a client that goes away cancels nothing, and
a daemon restart mid-job only makes the wait longer: the job id stays.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from schema.errors import StoreError
from schema.jobs import Job, JobState
from spool.tickets import Ticket
from web import outputs, uploads
from web.errors import ApiError
from web.face import Face

POLL_S = 0.25
OPENAI_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
ASR_OUTPUTS = ("txt", "vtt", "srt", "tsv", "json")
LANGUAGE_NAMES = {
    "en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian", "pt": "portuguese",
    "nl": "dutch", "pl": "polish", "ru": "russian", "uk": "ukrainian", "sv": "swedish", "da": "danish",
    "no": "norwegian", "fi": "finnish", "cs": "czech", "tr": "turkish", "ar": "arabic", "he": "hebrew",
    "hi": "hindi", "ja": "japanese", "ko": "korean", "zh": "chinese", "el": "greek", "hu": "hungarian",
}  # fmt: skip


def _form(fields: dict[str, str]) -> dict[str, Any]:
    return {
        "file": {"type": "string", "format": "binary"},
        **{k: {"type": "string", "description": v} for k, v in fields.items()},
    }


def _multipart(file_field: str, fields: dict[str, str]) -> dict[str, Any]:
    props = _form(fields)
    props[file_field] = props.pop("file")
    schema = {"type": "object", "required": [file_field], "properties": props}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


OPENAI_BODY = _multipart(
    "file",
    {
        "model": "accepted and ignored: the daemon's model runs (spool.toml model / profiles)",
        "language": "ISO-639-1 code, e.g. en",
        "prompt": "initial prompt",
        "response_format": " | ".join(OPENAI_FORMATS),
        "temperature": "accepted and ignored",
        "timestamp_granularities[]": "word: word-level timing in verbose_json",
    },
)
ASR_BODY = _multipart("audio_file", {})


async def wait_done(face: Face, ticket: Ticket) -> Job:
    """The job of ``ticket`` once it is finished; 504 after ``web_sync_timeout_s`` (the job goes on)."""
    timeout = face.settings.web_sync_timeout_s
    deadline = time.monotonic() + timeout
    verified = False
    while True:
        try:
            if not verified:
                verified = await uploads.recorded(face, ticket, wait_s=0) is not None
            job = await run_in_threadpool(face.store.job, ticket.job) if verified else None
        except StoreError:
            job = None  # the store is busy or a restart is under way: look again
        if job is not None and job.state.terminal:
            return job
        if time.monotonic() >= deadline:
            raise ApiError(
                504, "timeout", f"job {ticket.job} did not finish within {timeout:g} s; it goes on", job=ticket.job
            )
        await asyncio.sleep(POLL_S)


def _succeeded(job: Job) -> Job:
    if job.state is not JobState.succeeded:
        raise ApiError(
            422 if job.reason not in ("cancelled",) else 409,
            "job_failed" if job.state is JobState.failed else "job_cancelled",
            f"job {job.id} {job.state.value}: {job.message or job.reason or ''}".strip(),
            job=job.id,
            reason=job.reason,
        )
    return job


async def run_sync(
    request: Request, face: Face, field: str, options: dict[str, Any], encode: bool = True
) -> tuple[Job, dict[str, str]]:
    up = await uploads.receive(request, face, (field,))
    try:
        if not encode:
            await run_in_threadpool(uploads.as_wav, up)
        return await finish(face, up, options)
    finally:
        up.discard()


async def finish(face: Face, up: uploads.Upload, options: dict[str, Any]) -> tuple[Job, dict[str, str]]:
    ticket = await uploads.hand(face, up, uploads.check_options(options))
    job = _succeeded(await wait_done(face, ticket))
    return job, up.fields


def openai_options(f: dict[str, str], task: str) -> tuple[str, dict[str, Any]]:
    """OpenAI's form fields as job options (``model`` and ``temperature`` are the daemon's to choose)."""
    fmt = f.get("response_format") or "json"
    if fmt not in OPENAI_FORMATS:
        raise ApiError(400, "bad_response_format", f"response_format {fmt!r}", allowed=list(OPENAI_FORMATS))
    options: dict[str, Any] = {"formats": sorted({"json", *([fmt] if fmt in ("srt", "vtt") else [])}), "task": task}
    if f.get("language"):
        options["language"] = f["language"]
    if f.get("prompt"):
        options["initial_prompt"] = f["prompt"]
    if "word" in (f.get("timestamp_granularities[]") or f.get("timestamp_granularities") or ""):
        options["word_timestamps"] = True
    return fmt, options


async def openai_answer(face: Face, job: Job, fmt: str, task: str) -> Response:
    if fmt in ("srt", "vtt"):
        data, _ = await run_in_threadpool(outputs.read_output, face, job, fmt)
        return PlainTextResponse(data.decode("utf-8", "replace"))
    doc = await run_in_threadpool(outputs.transcript, face, job)
    if fmt == "text":
        return PlainTextResponse(str(doc.get("text", "")).strip() + "\n")
    if fmt == "verbose_json":
        return JSONResponse(outputs.verbose_json(doc, job, task))
    return JSONResponse({"text": str(doc.get("text", "")).strip()})


def router(face: Face) -> APIRouter:
    r = APIRouter(tags=["compatible"])

    async def openai(request: Request, task: str) -> Response:
        up = await uploads.receive(request, face, ("file",))
        try:
            fmt, options = openai_options(up.fields, task)
            job, _ = await finish(face, up, options)
        finally:
            up.discard()
        return await openai_answer(face, job, fmt, task)

    @r.post("/v1/audio/transcriptions", openapi_extra=OPENAI_BODY, summary="OpenAI-compatible transcription")
    async def transcriptions(request: Request) -> Response:
        return await openai(request, "transcribe")

    @r.post("/v1/audio/translations", openapi_extra=OPENAI_BODY, summary="OpenAI-compatible translation to English")
    async def translations(request: Request) -> Response:
        return await openai(request, "translate")

    @r.post("/asr", openapi_extra=ASR_BODY, summary="whisper-asr-webservice-compatible transcription (Bazarr)")
    async def asr(
        request: Request,
        task: Annotated[str, Query(pattern="^(transcribe|translate)$")] = "transcribe",
        language: Annotated[str | None, Query(max_length=16)] = None,
        initial_prompt: Annotated[str | None, Query(max_length=2000)] = None,
        output: Annotated[str, Query(pattern="^(txt|vtt|srt|tsv|json)$")] = "txt",
        encode: bool = True,
        word_timestamps: bool = False,
        vad_filter: bool = False,
    ) -> Response:
        # encode=false: raw 16 kHz s16le PCM (Bazarr), wrapped as WAV; vad_filter: not offered by the engines, ignored
        options: dict[str, Any] = {
            "task": task,
            "formats": sorted({output, "json"}),
            "word_timestamps": word_timestamps,
        }
        if language:
            options["language"] = language
        if initial_prompt:
            options["initial_prompt"] = initial_prompt
        job, _ = await run_sync(request, face, "audio_file", options, encode)
        data, name = await run_in_threadpool(outputs.read_output, face, job, output)
        return Response(
            data,
            media_type="application/json" if output == "json" else "text/plain; charset=utf-8",
            headers={"Asr-Engine": "spoolscribe", "Content-Disposition": f'attachment; filename="{_ascii(name)}"'},
        )

    @r.post("/detect-language", openapi_extra=ASR_BODY, summary="whisper-asr-webservice-compatible language detection")
    async def detect_language(request: Request, encode: bool = True) -> JSONResponse:
        job, _ = await run_sync(request, face, "audio_file", {"formats": ["json"]}, encode)
        doc = await run_in_threadpool(outputs.transcript, face, job)
        code = str(doc.get("language") or job.language or "")
        return JSONResponse(
            {"detected_language": LANGUAGE_NAMES.get(code, code), "language_code": code, "confidence": None}
        )

    return r


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
