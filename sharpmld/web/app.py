"""The Starlette application: the JSON API and ``/files/…``, behind the security guard.

What needs the CLI's knowledge (the ``status`` facts, ``retry``, ``cancel``) is passed in as callables,
so this room stays below ``cli`` in the layers and the two never disagree.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from sharpmld.queue.jobid import is_job_id
from sharpmld.web.jobs import find_job, list_jobs
from sharpmld.web.paths import resolve_file
from sharpmld.web.security import Guard

# Our formats, so the browser and downloaders get a type rather than octet-stream guesses.
CONTENT_TYPES = {
    ".ply": "application/octet-stream",
    ".splat": "application/octet-stream",
    ".spz": "application/octet-stream",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}


@dataclass(frozen=True)
class Actions:
    """What the app asks of the rest of sharpmld: the status facts, retry and cancel."""

    status: Callable[[], dict[str, Any]]
    retry: Callable[[str], Path | None]
    cancel: Callable[[str, bool], tuple[str, Path] | None]


def create_app(root: Path, actions: Actions, *, host: str, port: int, token: str | None) -> Guard:
    """The whole app for one root, bound as ``host:port`` (the guard needs to know the name)."""

    async def api_jobs(request: Request) -> Response:
        return JSONResponse({"jobs": list_jobs(root)})

    async def api_job(request: Request) -> Response:
        job = find_job(root, request.path_params["job_id"])
        if job is None:
            return JSONResponse({"code": "not_found", "message": "no such job"}, status_code=404)
        return JSONResponse(job)

    async def api_status(request: Request) -> Response:
        return JSONResponse(actions.status())

    async def api_retry(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        # The CLI's retry takes a prefix for a person's convenience; a URL names one job exactly.
        back = actions.retry(job_id) if is_job_id(job_id) else None
        if back is None:
            return JSONResponse(
                {"code": "not_found", "message": "no failed job has this id"}, status_code=404
            )
        return JSONResponse({"inbox": back.name})

    async def api_cancel(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        now = request.query_params.get("now") in ("1", "true")
        # An exact name: an inbox entry or a working job's id, never a prefix from a URL.
        done = actions.cancel(job_id, now) if find_job(root, job_id) else None
        if done is None:
            return JSONResponse(
                {"code": "not_found", "message": "no queued or running job has this id"},
                status_code=404,
            )
        return JSONResponse({"state": done[0], "id": done[1].name})

    async def files(request: Request) -> Response:
        path = resolve_file(root, request.path_params["path"])
        if path is None:
            return Response("not found", status_code=404, media_type="text/plain")
        kind = CONTENT_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
        return FileResponse(path, media_type=kind or "application/octet-stream")

    app = Starlette(
        routes=[
            Route("/api/jobs", api_jobs, methods=["GET"]),
            Route("/api/jobs/{job_id}", api_job, methods=["GET"]),
            Route("/api/jobs/{job_id}/retry", api_retry, methods=["POST"]),
            Route("/api/jobs/{job_id}/cancel", api_cancel, methods=["POST"]),
            Route("/api/status", api_status, methods=["GET"]),
            Route("/files/{path:path}", files, methods=["GET", "HEAD"]),
        ]
    )
    return Guard(app, host=host, port=port, token=token)
