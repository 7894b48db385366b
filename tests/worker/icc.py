"""Minimal ICC v2 RGB display profiles (matrix/TRC), built byte by byte for the colour tests.

Pillow can create only sRGB, LAB and XYZ profiles, and the tests must not ship someone
else's profile file, so the layout here follows the ICC.1:2001-04 (v2) specification: a
128-byte header, a tag table, then the tags (each 4-byte aligned). The primaries are the
D50-adapted (Bradford) colourants published for Display P3 (Apple's profile) and Adobe RGB
(1998) (Adobe's specification, annex); the TRCs are Adobe's gamma 563/256 and the sRGB
piecewise curve (`para` type 3) that Display P3 uses.
"""

from __future__ import annotations

import struct

D50 = (0.9642, 1.0, 0.8249)

# (red, green, blue) D50-adapted XYZ colourants.
DISPLAY_P3 = ((0.515121, 0.241196, -0.001053), (0.291977, 0.692245, 0.041885), (0.157104, 0.066574, 0.784073))
ADOBE_RGB = ((0.609741, 0.311111, 0.019470), (0.205276, 0.625671, 0.060867), (0.149185, 0.063217, 0.744568))
# LittleCMS's built-in sRGB (what ImageCms.createProfile("sRGB") returns), D50-adapted.
SRGB = ((0.436066, 0.222488, 0.013916), (0.385147, 0.716873, 0.097076), (0.143066, 0.060608, 0.714096))

SRGB_PARA = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
ADOBE_GAMMA = 563 / 256


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)


def _desc(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    # textDescriptionType: ASCII, then empty Unicode and ScriptCode parts (67-byte filler).
    unicode_and_script = struct.pack(">II", 0, 0) + b"\0" * 70
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(ascii_)) + ascii_ + unicode_and_script


def _gamma_curve(gamma: float) -> bytes:
    return b"curv" + b"\0" * 4 + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"


def _para_curve(g: float, a: float, b: float, c: float, d: float) -> bytes:
    return b"para" + b"\0" * 4 + struct.pack(">HH", 3, 0) + b"".join(_s15(v) for v in (g, a, b, c, d))


def rgb_profile(
    description: str,
    primaries: tuple[tuple[float, float, float], ...],
    *,
    gamma: float | None = None,
) -> bytes:
    """An ICC v2 monitor profile: ``gamma`` as a `curv`, or the sRGB curve when None."""
    trc = _gamma_curve(gamma) if gamma is not None else _para_curve(*SRGB_PARA)
    tags = [
        (b"desc", _desc(description)),
        (b"wtpt", _xyz(*D50)),
        (b"rXYZ", _xyz(*primaries[0])),
        (b"gXYZ", _xyz(*primaries[1])),
        (b"bXYZ", _xyz(*primaries[2])),
        (b"rTRC", trc),
        (b"gTRC", trc),
        (b"bTRC", trc),
        (b"cprt", b"text" + b"\0" * 4 + b"no copyright, test data\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"\0" * 4
        + struct.pack(">I", 0x02100000)
        + b"mntr"
        + b"RGB "
        + b"XYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 4  # platform
        + b"\0" * 4  # flags
        + b"\0" * 8  # manufacturer, model
        + b"\0" * 8  # attributes
        + struct.pack(">I", 0)  # perceptual intent
        + b"".join(_s15(v) for v in D50)
        + b"\0" * 4  # creator
    )
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + body


def p3() -> bytes:
    return rgb_profile("Display P3", DISPLAY_P3)


def adobe_rgb() -> bytes:
    return rgb_profile("Adobe RGB (1998)", ADOBE_RGB, gamma=ADOBE_GAMMA)
