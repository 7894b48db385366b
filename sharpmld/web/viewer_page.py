"""``/view/{job_id}/{stem}``: the interactive splat viewer's page, and its scripts.

The page is a shell: the facts the viewer needs (which file to stream, the input camera's
focal length and image size from ``result.json``) travel as one JSON block, and the drawing
is done by the plain ES modules in ``static/viewer/``. Nothing is loaded from the network.

A stem is only ever looked up among the outputs ``result.json`` lists, so a name from a
stranger never becomes a path by itself; every name shown is escaped, and the JSON block
cannot close its ``<script>`` element.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from sharpmld.queue.jobid import is_job_id
from sharpmld.queue.layout import JOB_FILE, RESULT_FILE
from sharpmld.web.paths import resolve_file

STATIC_DIR = Path(__file__).resolve().parent / "static" / "viewer"
VIEWABLE = ("splat", "ply")
"""The outputs the viewer streams, in order of preference (``.splat`` is 43% smaller)."""
STATES_WITH_RESULTS = ("done", "failed")
"""A failed job keeps the photos it finished, with their outputs listed in result.json."""

# The viewer's own scripts only: no inline script, no eval, nothing from elsewhere. The job
# page may frame the viewer; other sites may not.
CSP = (
    "default-src 'none'; script-src 'self'; worker-src 'self'; connect-src 'self'; "
    "style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)


@dataclass(frozen=True)
class Scene:
    """What the viewer needs for one photo's result: the file and the input camera."""

    job_id: str
    name: str
    stem: str
    url: str
    kind: str
    f_px: float | None
    width: int | None
    height: int | None

    def config(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "kind": self.kind,
            "camera": None
            if self.f_px is None or self.width is None or self.height is None
            else {"f_px": self.f_px, "width": self.width, "height": self.height},
            "name": self.name,
            "stem": self.stem,
        }


def _json(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _number(value: Any) -> float | None:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None
    )


def find_scene(root: Path, job_id: str, stem: str) -> Scene | None:
    """The viewable output of ``stem`` in a finished job, as result.json lists it, or None."""
    if not is_job_id(job_id):
        return None
    for state in STATES_WITH_RESULTS:
        result = _json(resolve_file(root, f"{state}/{job_id}/{RESULT_FILE}"))
        if not result:
            continue
        record = _json(resolve_file(root, f"{state}/{job_id}/{JOB_FILE}"))
        name = str(result.get("original_name") or record.get("original_name") or job_id)
        images = result.get("images")
        for image in images if isinstance(images, list) else []:
            if not isinstance(image, dict) or not isinstance(image.get("outputs"), dict):
                continue
            for kind in VIEWABLE:
                entry = image["outputs"].get(kind)
                rel = entry.get("path") if isinstance(entry, dict) else None
                if not isinstance(rel, str) or PurePosixPath(rel).stem != stem:
                    continue
                if resolve_file(root, f"{state}/{job_id}/{rel}") is None:
                    continue
                width, height = _number(image.get("width")), _number(image.get("height"))
                return Scene(
                    job_id=job_id,
                    name=name,
                    stem=stem,
                    url="/files/" + quote(f"{state}/{job_id}/{rel}"),
                    kind=kind,
                    f_px=_number(image.get("f_px")),
                    width=None if width is None else int(width),
                    height=None if height is None else int(height),
                )
        return None
    return None


def _script_json(data: dict[str, Any]) -> str:
    """JSON safe inside ``<script type=application/json>``: no ``<``, ``>`` or ``&`` at all."""
    text = json.dumps(data, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(scene: Scene) -> str:
    """The viewer's HTML for one scene (every name escaped)."""
    title = html.escape(f"{scene.stem} · {scene.name}")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<title>{title}</title>
<link rel="stylesheet" href="/static/viewer/viewer.css">
<script type="application/json" id="scene">{_script_json(scene.config())}</script>
<script type="module" src="/static/viewer/main.js"></script>
</head>
<body>
<header class="bar">
  <h1>{html.escape(scene.stem)} <span class="job">{html.escape(scene.name)}</span></h1>
  <progress id="progress" max="1" value="0"></progress>
  <span id="status" role="status">Loading…</span>
  <button id="reset" type="button" title="Back to the photo's view (R)">Reset view</button>
  <details class="help"><summary>Controls</summary>
    <p>Drag to orbit · right-drag, shift-drag or two fingers to pan · wheel or pinch to zoom ·
    arrow keys orbit, shift+arrows pan, + and − zoom, R resets to the photo's view.</p>
  </details>
</header>
<canvas id="view" tabindex="0" aria-label="3D view of {html.escape(scene.stem)}"></canvas>
<noscript>The viewer needs JavaScript and WebGL2.</noscript>
</body>
</html>
"""


def viewer_routes(root: Path) -> list[BaseRoute]:
    """The page route and the viewer's static scripts, for the app's route table."""

    async def view(request: Request) -> Response:
        scene = find_scene(root, request.path_params["job_id"], request.path_params["stem"])
        if scene is None:
            return Response("no viewable result with this name", status_code=404, media_type="text/plain")
        return HTMLResponse(render_page(scene), headers={"Content-Security-Policy": CSP})

    return [
        Route("/view/{job_id}/{stem}", view, methods=["GET", "HEAD"]),
        Mount("/static/viewer", StaticFiles(directory=STATIC_DIR), name="viewer-static"),
    ]
