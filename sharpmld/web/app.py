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
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sharpmld.queue.jobid import is_job_id
from sharpmld.web import icons, pages
from sharpmld.web.jobs import FinishedSummaries, find_job, list_jobs
from sharpmld.web.paths import resolve_file
from sharpmld.web.security import Guard
from sharpmld.web.upload_receiver import UploadLimits
from sharpmld.web.upload_routes import upload_routes
from sharpmld.web.viewer_page import viewer_routes

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

# The pages' own assets, served by name from package data (no directory listing, no lookup by path).
STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {
    "app.css": "text/css; charset=utf-8",
    "queue.js": "text/javascript; charset=utf-8",
    "job.js": "text/javascript; charset=utf-8",
}


@dataclass(frozen=True)
class Actions:
    """What the app asks of the rest of sharpmld: the status facts, retry and cancel."""

    status: Callable[[], dict[str, Any]]
    retry: Callable[[str], Path | None]
    cancel: Callable[[str, bool], tuple[str, Path] | None]


def create_app(
    root: Path, actions: Actions, *, host: str, port: int, token: str | None, limits: UploadLimits
) -> Guard:
    """The whole app for one root, bound as ``host:port`` (the guard needs to know the name);
    uploads are held to ``limits``, the intake's own."""
    finished = FinishedSummaries()  # finished jobs' facts, read again only when they change

    async def api_jobs(request: Request) -> Response:
        return JSONResponse({"jobs": list_jobs(root, finished)})

    async def api_job(request: Request) -> Response:
        job = find_job(root, request.path_params["job_id"])
        if job is None:
            return JSONResponse({"code": "not_found", "message": "no such job"}, status_code=404)
        return JSONResponse({**job, "revision": pages.revision(job)})

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

    # --- HTML pages and their static assets ---
    async def queue_page(request: Request) -> Response:
        return HTMLResponse(pages.render_queue(list_jobs(root, finished), actions.status()))

    async def job_page(request: Request) -> Response:
        job = find_job(root, request.path_params["job_id"])
        if job is None:
            return HTMLResponse("<!DOCTYPE html><title>Not found</title><p>No such job.</p>", 404)
        return HTMLResponse(pages.render_job(job))

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(STATIC_DIR / name, media_type=STATIC_FILES[name])

    async def web_manifest(request: Request) -> Response:
        return Response(icons.manifest(), media_type="application/manifest+json")

    async def icon(request: Request) -> Response:
        name = request.path_params["name"]
        sizes = {f"icon-{s}.png": s for s in icons.SIZES}
        if name not in sizes:
            return Response("not found", status_code=404, media_type="text/plain")
        # Drawn once per process in pure Python: off the event loop, so no request waits on it.
        png = await run_in_threadpool(icons.icon_png, sizes[name])
        return Response(png, media_type="image/png", headers={"cache-control": "max-age=86400"})

    page_routes = [
        Route("/", queue_page, methods=["GET"]),
        Route("/manifest.webmanifest", web_manifest, methods=["GET"]),
        Route("/icons/{name}", icon, methods=["GET"]),
        Route("/jobs/{job_id}", job_page, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET", "HEAD"]),
    ]
    # --- end of HTML pages ---

    app = Starlette(
        routes=[
            *upload_routes(root, limits),
            *page_routes,
            Route("/api/jobs", api_jobs, methods=["GET"]),
            Route("/api/jobs/{job_id}", api_job, methods=["GET"]),
            Route("/api/jobs/{job_id}/retry", api_retry, methods=["POST"]),
            Route("/api/jobs/{job_id}/cancel", api_cancel, methods=["POST"]),
            Route("/api/status", api_status, methods=["GET"]),
            Route("/files/{path:path}", files, methods=["GET", "HEAD"]),
            *viewer_routes(root),
        ]
    )
    return Guard(app, host=host, port=port, token=token)
