"""``sharpmld convert``'s settings: the format variants and the camera a bare ``.ply`` lacks.

The variants default to the configuration's ``[outputs]``, so ``convert`` writes what the
daemon would; the flags override them. A vertex-only ``.ply`` (the default layout) carries no
camera, so ``--f-px`` and ``--size`` supply it for the formats that hold one.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sharpmld.formats.gaussians import SceneMeta
    from sharpmld.formats.registry import WriteOptions


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> (640, 480); ValueError, saying the expected form, otherwise."""
    width, sep, height = text.lower().partition("x")
    if sep and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0:
        return int(width), int(height)
    raise ValueError(f"--size must be WIDTHxHEIGHT in pixels, e.g. 1536x1024; got {text!r}")


def convert_settings(config: Any, args: argparse.Namespace) -> tuple[WriteOptions, SceneMeta | None]:
    """The write options and fallback camera ``args`` and ``config`` ask for."""
    from sharpmld.formats.gaussians import SceneMeta
    from sharpmld.formats.registry import WriteOptions

    layout = args.ply_layout or config.get("outputs", "ply_layout")
    version = args.spz_version or config.get("outputs", "spz_version")
    options = WriteOptions(ply_layout=str(layout), spz_version=int(version))
    if args.f_px is None and args.size is None:
        return options, None
    if args.f_px is None or args.size is None:
        raise ValueError("the camera needs both --f-px and --size WIDTHxHEIGHT")
    if not args.f_px > 0:
        raise ValueError(f"--f-px must be a focal length in pixels greater than 0; got {args.f_px}")
    width, height = parse_size(args.size)
    return options, SceneMeta(f_px=float(args.f_px), width=width, height=height)
