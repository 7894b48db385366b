"""The upload's routes, as one list ``app.py`` puts in front of its own.

Kept apart so that the app module stays a table of routes and the upload's five (the page,
its script, the check, the POST and the follow-up) are found together.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sharpmld.core.errors import SharpmldError
from sharpmld.queue.layout import Layout
from sharpmld.web.upload import receive, refusal
from sharpmld.web.upload_check import check, read_files
from sharpmld.web.upload_follow import follow
from sharpmld.web.upload_page import render_upload
from sharpmld.web.upload_receiver import UploadLimits

SCRIPT = Path(__file__).resolve().parent / "static" / "upload.js"


def upload_routes(root: Path, limits: UploadLimits) -> list[Route]:
    """``GET /upload``, ``GET /static/upload.js``, ``POST /api/jobs`` (and ``/api/jobs/check``
    before it), ``GET /api/uploads/{name}``."""
    layout = Layout(root)

    async def page(request: Request) -> Response:
        return HTMLResponse(render_upload(limits))

    async def script(request: Request) -> Response:
        return FileResponse(SCRIPT, media_type="text/javascript; charset=utf-8")

    async def post(request: Request) -> Response:
        return await receive(request, layout, limits)

    async def precheck(request: Request) -> Response:
        try:
            skipped = check(await read_files(request, limits), limits)
        except SharpmldError as exc:
            return refusal(exc)
        return JSONResponse({"ok": True, "ignored": skipped})

    async def where(request: Request) -> Response:
        since = request.query_params.get("since", "")
        return JSONResponse(follow(layout, request.path_params["name"], since))

    return [
        Route("/upload", page, methods=["GET"]),
        Route("/static/upload.js", script, methods=["GET", "HEAD"]),
        Route("/api/jobs", post, methods=["POST"]),
        Route("/api/jobs/check", precheck, methods=["POST"]),
        Route("/api/uploads/{name}", where, methods=["GET"]),
    ]
