"""Pinhole cameras for previews: the input camera, and the sway of cameras around it.

Plain numpy: a camera is intrinsics in pixels and a world-to-camera transform, and the
rasteriser reads nothing else from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sharpmld.formats.gaussians import SceneMeta

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera: intrinsics in pixels and the world-to-camera transform.

    A world point X maps to camera space as ``rotation @ X + translation`` (OpenCV axes:
    x right, y down, z forward), then to pixel ``(fx x / z + cx, fy y / z + cy)``, where pixel
    (u, v) covers [u, u + 1) × [v, v + 1) and its centre is (u + 0.5, v + 0.5).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    rotation: F64 = field(default_factory=lambda: np.eye(3))
    translation: F64 = field(default_factory=lambda: np.zeros(3))

    @staticmethod
    def look_at(
        fx: float, fy: float, cx: float, cy: float, eye: npt.ArrayLike, target: npt.ArrayLike
    ) -> Camera:
        """A camera at ``eye`` looking at ``target``, with image "down" kept along world +y."""
        eye_v = np.asarray(eye, dtype=np.float64)
        forward = np.asarray(target, dtype=np.float64) - eye_v
        forward /= np.linalg.norm(forward)
        right = np.cross(np.array([0.0, 1.0, 0.0]), forward)
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rotation = np.stack([right, down, forward])
        return Camera(fx, fy, cx, cy, rotation, -rotation @ eye_v)


def preview_size(meta: SceneMeta, long_side: int) -> tuple[int, int]:
    """(width, height) of a render whose longer side is ``long_side``, keeping the aspect."""
    scale = long_side / max(meta.width, meta.height)
    return max(1, round(meta.width * scale)), max(1, round(meta.height * scale))


def input_camera(meta: SceneMeta, width: int, height: int) -> Camera:
    """The camera the scene was seen from, with intrinsics scaled to a width×height render."""
    sx, sy = width / meta.width, height / meta.height
    return Camera(meta.f_px * sx, meta.f_px * sy, width / 2, height / 2)


def orbit_cameras(
    meta: SceneMeta, width: int, height: int, depth: float, frames: int, amplitude: float
) -> list[Camera]:
    """A sway through the input viewpoint, every camera aimed at the median depth.

    The camera centre runs once around an ellipse parallel to the image plane that starts at
    the input camera: ±``amplitude`` × ``depth`` sideways and up to half that upwards, so the
    first frame is the input view and no two frames repeat.
    """
    base = input_camera(meta, width, height)
    target = (0.0, 0.0, depth)
    cams = []
    for k in range(frames):
        phi = 2 * math.pi * k / frames
        eye = (amplitude * depth * math.sin(phi), 0.25 * amplitude * depth * (math.cos(phi) - 1), 0.0)
        cams.append(Camera.look_at(base.fx, base.fy, base.cx, base.cy, eye, target))
    return cams
