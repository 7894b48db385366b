"""What a preview shows: the scene from its input camera, and a short sway around it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from sharpmld.formats.gaussians import Gaussians, SceneMeta
from sharpmld.worker.preview.camera import Camera, input_camera, orbit_cameras, preview_size
from sharpmld.worker.preview.raster import SplatScene, render_scene

U8 = npt.NDArray[np.uint8]


def render(
    g: Gaussians,
    camera: Camera,
    width: int,
    height: int,
    background: tuple[int, int, int] = (0, 0, 0),
    *,
    device: str | torch.device = "cpu",
) -> U8:
    """Render Gaussians through ``camera`` into an (height, width, 3) sRGB uint8 image.

    Colours are composited front to back in linear RGB over ``background`` (8-bit sRGB) and
    encoded with the same sRGB curve as the ``.ply`` writer.
    """
    return render_scene(SplatScene(g, device), camera, width, height, background)


def preview(
    g: Gaussians,
    meta: SceneMeta,
    long_side: int = 512,
    background: tuple[int, int, int] = (0, 0, 0),
    *,
    device: str | torch.device = "cpu",
) -> U8:
    """The scene from its input camera, ``long_side`` pixels on the longer side."""
    width, height = preview_size(meta, long_side)
    return render(g, input_camera(meta, width, height), width, height, background, device=device)


def orbit_frames(
    g: Gaussians,
    meta: SceneMeta,
    long_side: int = 384,
    frames: int = 24,
    amplitude: float = 0.04,
    background: tuple[int, int, int] = (0, 0, 0),
    *,
    device: str | torch.device = "cpu",
) -> list[U8]:
    """``frames`` renders of a small camera sway around the input view (see `orbit_cameras`)."""
    scene = SplatScene(g, device)
    width, height = preview_size(meta, long_side)
    cams = orbit_cameras(meta, width, height, scene.median_depth(), frames, amplitude)
    return [render_scene(scene, cam, width, height, background) for cam in cams]
