"""``/api/v1``: the jobs API (paths fixed; docs/web.md documents each), status and the event stream."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from processor import views
from schema.jobs import JobState
from web import outputs, streams, uploads
from web.errors import ApiError
from web.face import Face, item

MULTIPART = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "options": {
                            "type": "string",
                            "description": 'job options as JSON (the sidecar schema): {"language": "de"}',
                        },
                    },
                }
            }
        },
    }
}


def router(face: Face) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["jobs"])

    @r.post("/jobs", status_code=201, openapi_extra=MULTIPART, summary="Upload a file; 201 with its job id")
    async def create_job(request: Request) -> JSONResponse:
        up = await uploads.receive(request, face, ("file",))
        try:
            options = uploads.parse_options(up.fields.get("options"))
        except ApiError:
            up.discard()
            raise
        ticket = await uploads.hand(face, up, options)
        job = await uploads.recorded(face, ticket)
        doc: dict[str, Any] = item(job) if job else {"id": ticket.job, "state": "inbox", "name": ticket.name}
        doc["id"] = ticket.job
        doc["daemon_running"] = await run_in_threadpool(face.daemon_running)
        return JSONResponse(doc, status_code=201, headers={"Location": f"/api/v1/jobs/{ticket.job}"})

    @r.get("/jobs", summary="List jobs, newest first")
    def list_jobs(
        state: Annotated[list[str] | None, Query(description="one or more of " + ", ".join(views.STATE_ORDER))] = None,
        q: Annotated[str, Query(max_length=200, description="part of the name")] = "",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        return page_of(face, state or [], q, limit, offset)

    @r.get("/jobs/{job_id}", summary="One job with its state, progress and events")
    def get_job(job_id: str) -> dict[str, Any]:
        return face.detail(face.job(job_id))

    @r.get("/jobs/{job_id}/outputs/{fmt}", summary="A transcript: txt, srt, vtt, tsv or json")
    def get_output(job_id: str, fmt: str, download: bool = False) -> Response:
        data, name = outputs.read_output(face, face.job(job_id), fmt)
        disposition = "attachment" if download else "inline"
        return Response(
            data,
            media_type=outputs.MEDIA[fmt],
            headers={"Content-Disposition": f"{disposition}; filename*=UTF-8''{_quote(name)}"},
        )

    @r.post("/jobs/{job_id}/cancel", status_code=202, summary="Ask the daemon to stop the job")
    def cancel(job_id: str) -> dict[str, Any]:
        return item(face.cancel(face.job(job_id)))

    @r.post("/jobs/{job_id}/retry", status_code=202, summary="Queue a failed or cancelled job again")
    def retry(job_id: str) -> dict[str, Any]:
        return item(face.retry(face.job(job_id)))

    return r


def stream_router(face: Face) -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["jobs"])

    @r.get("/jobs/{job_id}/log", summary="The worker log's tail; ?follow=1: Server-Sent Events until the job ends")
    def job_log(job_id: str, n: Annotated[int, Query(ge=0, le=100000)] = 200, follow: bool = False) -> Response:
        job = face.job(job_id)
        if follow:
            return EventSourceResponse(streams.log_follow(face, job.id, n), ping=10)
        text, _ = streams.tail_lines(face.layout.job_log(job.id), n)
        return PlainTextResponse(text)

    @r.get("/events", summary="The event log as Server-Sent Events, resumable")
    async def events(
        since: Annotated[int | None, Query(ge=0, description="position to start after (0: from the start)")] = None,
        job: Annotated[str | None, Query(pattern="^[0-9a-f]{12}$")] = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> EventSourceResponse:
        if since is None and last_event_id and last_event_id.isdigit():
            since = int(last_event_id)
        if since is None:
            since = await run_in_threadpool(face.store.last_position)
        return EventSourceResponse(streams.events(face, since, job), ping=10)

    @r.get("/status", summary="Daemon, queue, running jobs and firing alerts (what `spool status` shows)")
    def status() -> dict[str, Any]:
        return face.status()

    return r


def page_of(face: Face, state: list[str], q: str, limit: int, offset: int) -> dict[str, Any]:
    try:
        states = [JobState(s) for s in state]
    except ValueError:
        raise ApiError(400, "bad_state", "unknown state", allowed=views.STATE_ORDER) from None
    jobs = list(reversed(face.store.jobs(states)))
    if q:
        jobs = [j for j in jobs if q.casefold() in views.display(j.source).casefold()]
    page = jobs[offset : offset + limit]
    return {"total": len(jobs), "offset": offset, "limit": limit, "items": [item(j) for j in page]}


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
