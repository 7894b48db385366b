"""What converting embedded colour profiles costs and what it corrects.

``python -m bench.colour_bench [--side-mp 12]`` decodes one synthetic photo (a smooth colour
field, like a real scene, not noise) tagged Display P3 and one tagged Adobe RGB, each with
``[model] colour = "srgb"`` and, as the baseline in the same run, ``"as-is"``. It prints the
decode time with and without conversion and the mean difference between the two (the error
made by using the pixels as if they were sRGB), on a 0-1 scale.
"""

from __future__ import annotations

import argparse
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.common import median, timed
from sharpmld.worker.decode import load_image
from tests.worker import icc


def _scene(width: int, height: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Saturated gradients over the whole gamut, so the figure is not a flat grey's."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = x / width
    g = y / height
    b = 0.5 + 0.5 * np.sin(6.0 * (r + g))
    return np.ascontiguousarray((np.dstack((r, g, b)) * 255).astype(np.uint8))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mp", type=float, default=12.0, help="megapixels of the photo (4:3)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    height = int((args.mp * 1e6 * 3 / 4) ** 0.5)
    width = height * 4 // 3
    rgb = _scene(width, height)
    with tempfile.TemporaryDirectory() as tmp:
        for name, profile in (("Display P3", icc.p3()), ("Adobe RGB", icc.adobe_rgb())):
            path = Path(tmp) / "photo.jpg"
            Image.fromarray(rgb).save(path, quality=92, icc_profile=profile)
            side = max(width, height)
            decode = partial(load_image, path, max_pixels_side=side)
            as_is_t, raw = timed(partial(decode, colour="as-is"), args.runs, warmup=1)
            srgb_t, conv = timed(partial(decode, colour="srgb"), args.runs, warmup=1)
            error = float(np.abs(conv.rgb.astype(np.int16) - raw.rgb.astype(np.int16)).mean()) / 255.0
            print(
                f"{name}, {width}x{height} JPEG: decode {median(as_is_t):.3f} s as-is (baseline), "
                f"{median(srgb_t):.3f} s with conversion (+{median(srgb_t) - median(as_is_t):.3f} s); "
                f"mean |as-is - converted| = {error:.4f} (0-1 scale)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
