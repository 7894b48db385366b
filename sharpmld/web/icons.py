"""The home-screen icons and the web app manifest, drawn here in code (no artwork to carry).

The web side may not load PIL or numpy (see the import-linter contracts), so the PNG is
written by hand: one IHDR, one zlib-compressed IDAT of filter-0 RGBA rows, one IEND, as the
PNG specification (W3C, 3rd edition, sections 5 and 11) lays them out. The picture is three
soft, overlapping discs on a dark square: a few Gaussians, which is what a splat is made of.
"""

from __future__ import annotations

import functools
import json
import math
import struct
import zlib

SIZES = (192, 512)
BACKGROUND = (29, 53, 87)  # also the manifest's theme colour, #1d3557
# (centre x, centre y, radius) as fractions of the side, and the colour of each disc.
BLOBS = (
    ((0.40, 0.42, 0.24), (230, 57, 70)),
    ((0.60, 0.44, 0.22), (244, 162, 97)),
    ((0.50, 0.62, 0.24), (168, 218, 220)),
)


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _falloff(size: int, centre: float, radius: float) -> list[float]:
    """exp(-2 d²/r²) along one axis at each pixel centre; a disc's weight is the product of two."""
    return [math.exp(-2.0 * (((i + 0.5) / size - centre) / radius) ** 2) for i in range(size)]


Falloffs = list[tuple[list[float], list[float]]]


def _row(size: int, j: int, falloffs: Falloffs) -> bytes:
    """One row of RGBA pixels: the background, each disc blended over what is below it."""
    r, g, b = ([float(c)] * size for c in BACKGROUND)
    for (across, down), (_, (kr, kg, kb)) in zip(falloffs, BLOBS, strict=True):
        wy = 0.85 * down[j]
        for i, wx in enumerate(across):
            a = wx * wy
            r[i] += a * (kr - r[i])
            g[i] += a * (kg - g[i])
            b[i] += a * (kb - b[i])
    out = bytearray(4 * size)
    out[0::4], out[1::4], out[2::4] = (bytes(round(v) for v in channel) for channel in (r, g, b))
    out[3::4] = b"\xff" * size
    return bytes(out)


@functools.cache
def icon_png(size: int) -> bytes:
    """A ``size``×``size`` opaque RGBA PNG of the icon (drawn once per process, then kept)."""
    if size not in SIZES:
        raise ValueError(f"no icon of size {size}")
    falloffs = [(_falloff(size, cx, radius), _falloff(size, cy, radius)) for (cx, cy, radius), _ in BLOBS]
    rows = b"".join(b"\x00" + _row(size, j, falloffs) for j in range(size))  # filter type 0 per row
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, 9))
        + _chunk(b"IEND", b"")
    )


def manifest() -> str:
    """The web app manifest (W3C Web Application Manifest): what a home screen needs."""
    colour = "#{:02x}{:02x}{:02x}".format(*BACKGROUND)
    return json.dumps(
        {
            "name": "sharpmld",
            "short_name": "sharpmld",
            "description": "Photos in, 3D Gaussian splats out: the queue and the results.",
            "start_url": "/",
            "scope": "/",
            "display": "standalone",
            "background_color": colour,
            "theme_color": colour,
            "icons": [
                {"src": f"/icons/icon-{s}.png", "sizes": f"{s}x{s}", "type": "image/png", "purpose": "any"}
                for s in SIZES
            ],
        },
        indent=2,
    )
