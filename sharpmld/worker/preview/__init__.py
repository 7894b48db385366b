"""Previews of finished scenes: a still from the input camera, a short sway, an index page.

Importing this package is cheap (no torch, numpy or Pillow): the daemon imports
:mod:`sharpmld.daemon.index_page`, and the daemon never loads torch. The cameras (``camera``),
the rasteriser (``raster``), the views (``views``) and the PNG/GIF writers (``encode``) are
imported only when a preview is written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sharpmld.core import fsio

if TYPE_CHECKING:
    from sharpmld.formats.gaussians import Gaussians, SceneMeta

PREVIEWS_DIR = "previews"
PREVIEW_LONG_SIDE = 512
ORBIT_LONG_SIDE = 384
ORBIT_FRAMES = 24
ORBIT_FPS = 12.0


def write_previews(
    g: Gaussians, meta: SceneMeta, job_dir: Path, stem: str, orbit_frames: int | None = None
) -> dict[str, Any]:
    """Write ``previews/<stem>.png`` and (with ``orbit_frames``) ``previews/<stem>.orbit.gif``.

    Returns their result.json entries, ``{"preview": {path, bytes, sha256}, "orbit": {...}}``,
    with paths relative to ``job_dir`` like every other output.
    """
    from sharpmld.worker.preview import views
    from sharpmld.worker.preview.encode import encode_gif, encode_png

    folder = job_dir / PREVIEWS_DIR
    folder.mkdir(exist_ok=True)
    still = views.preview(g, meta, PREVIEW_LONG_SIDE)
    files = {"preview": (folder / f"{stem}.png", encode_png(still))}
    orbit_frames = ORBIT_FRAMES if orbit_frames is None else orbit_frames
    if orbit_frames > 0:
        frames = views.orbit_frames(g, meta, ORBIT_LONG_SIDE, orbit_frames)
        files["orbit"] = (folder / f"{stem}.orbit.gif", encode_gif(frames, ORBIT_FPS))
    out: dict[str, Any] = {}
    for name, (path, data) in files.items():
        fsio.write_bytes(path, data)
        out[name] = {
            "path": path.relative_to(job_dir).as_posix(),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    return out
