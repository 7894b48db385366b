"""Niantic's ``.spz``: gzip-compressed, quantised Gaussians, about a tenth of the ``.ply``.

Written from the format description in Niantic's spz repository (README "File Format" and
``src/cc/load-spz.cc`` / ``splat-utils.h``), as version 2 (the default) or 3, the two gzip
based versions (version 4 needs zstd, which the Python standard library lacks before 3.14).
They differ only in the rotations block. Version 2 is the default because it opens in the
most viewers: GaussianSplats3D 0.4.7 reads version 2 only, while Spark, Babylon and
PlayCanvas read both (``[outputs] spz_version`` picks 3).

Layout: one gzip stream over a 16-byte little-endian header followed by the attributes, each
as a separate block for all N Gaussians (not interleaved), in this order:

=============  ===========  ==================================================================
block          bytes        encoding
=============  ===========  ==================================================================
header         16           magic 0x5053474E ("NGSP"), version u32, N u32, SH degree u8 (0),
                            fractional bits u8 (12), flags u8 (bit 0: antialiased), reserved u8
positions      N × 9        x, y, z as 24-bit two's-complement fixed point, 12 fraction bits
alphas         N            round(sigmoid(opacity logit) × 255)
colors         N × 3        round(f_dc × 0.15 × 255 + 0.5 × 255): the SH DC coefficient, scaled
                            by 0.15 (not SH_C0) so slightly out-of-gamut colours survive
scales         N × 3        round((log scale + 10) × 16)
rotations v2   N × 3        the unit quaternion (x, y, z, w order), negated if w < 0, as
                            ``round(c × 127.5 + 127.5)`` for x, y, z; readers derive w >= 0
rotations v3   N × 4        "smallest three": the unit quaternion (x, y, z, w order), sign
                            chosen so its largest component is positive; a u32 holding the
                            largest component's index in bits 30-31 and the other three, in
                            x, y, z, w order from the high bits down, as sign bit + 9-bit
                            magnitude of ``|q| / sqrt(1/2)`` scaled to 511
SH (rest)      N × 0        degree 0: none
=============  ===========  ==================================================================

Every byte is ``clamp(round(v), 0, 255)`` with C's ``round`` (half away from zero), computed
from the float32 values of the ``.ply`` as the reference packer does, so the uncompressed
payload matches what Niantic's packer makes of the same ``.ply``.

Coordinates are stored as the ``.ply`` has them (ml-sharp's x right, y down, z forward), with
no axis flip. The README says SPZ data is "by default" RUB, but the reference packer only
converts when the caller names a source frame; Niantic's own ``ply_to_spz`` names none, so
SPZ files made from 3DGS ``.ply`` files carry the ``.ply``'s axes, and readers that show them
like their ``.ply`` (PlayCanvas splat-transform 3.x / SuperSplat) show ours the same way.

Precision of a write/read round trip (what :data:`~sharpmld.formats.registry.FORMATS` declares):
positions ±1/8192 (within ±2048 units; beyond that they are clamped), log scales ±1/32 (so
±3.2 % relative, for scales within e^-10 .. e^5.94; others are clamped), opacity ±1/510,
the sRGB DC colour ±SH_C0/76.5 (≤ 0.0084 in linear RGB) for colours in [0, 1], and
quaternion components ±0.0021 (v3) up to the overall sign (q and -q are the same rotation).
Version 2 stores x, y, z to ±1/255, and the derived w loses precision as it nears 0 (up to
±0.12 for w = 0): the reason version 3 exists.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sharpmld.core.fsio import atomic_writer
from sharpmld.formats.gaussians import F32, Gaussians, SceneMeta
from sharpmld.formats.ply import SH_C0, VERTEX_DTYPE, VERTEX_PROPERTIES, srgb_to_linear

MAGIC = 0x5053474E
VERSIONS = (2, 3)
"""The versions written (``[outputs] spz_version``); all of 1-3 are read."""
VERSION = 2
"""The default version written: the one the most viewers open (see the module docstring)."""
FRACTIONAL_BITS = 12
COLOR_SCALE = 0.15
"""SPZ's scale for the SH DC coefficient (``colorScale`` in the reference), deliberately not SH_C0."""
FLAG_ANTIALIASED = 0x1
HEADER = struct.Struct("<IIIBBBB")
GZIP_LEVEL = 6
"""zlib's default level, as the reference packer uses (level 9 is 3x slower for ~2 % less)."""

_NCOLS = len(VERTEX_PROPERTIES)
_SQRT1_2 = np.float32(0.707106781186547524401)
_MASK9 = 511
_MAX_FIXED = (1 << 23) - 1
_SH_DIM = {0: 0, 1: 3, 2: 8, 3: 15, 4: 24}


def _round_bytes(x: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.uint8]:
    """C's ``uint8(clamp(round(x), 0, 255))`` (round half away from zero); NaN becomes 0."""
    # float64 so that adding 0.5 to a float32 value is exact.
    y = np.asarray(x, dtype=np.float64)
    y = np.floor(np.abs(y) + 0.5) * np.sign(y)
    out: npt.NDArray[np.uint8] = np.nan_to_num(np.clip(y, 0, 255)).astype(np.uint8)
    return out


def _fixed24(t: F32) -> npt.NDArray[np.uint8]:
    """Positions (n, 3) as 24-bit little-endian fixed point, 9 bytes a row."""
    scaled = t * np.float32(1 << FRACTIONAL_BITS)  # float32 product, as in the reference
    y = scaled.astype(np.float64)
    y = np.floor(np.abs(y) + 0.5) * np.sign(y)
    fixed = np.nan_to_num(np.clip(y, -_MAX_FIXED - 1, _MAX_FIXED)).astype("<i4")
    out: npt.NDArray[np.uint8] = np.ascontiguousarray(
        fixed.view(np.uint8).reshape(len(t), 3, 4)[:, :, :3]
    ).reshape(len(t), 9)
    return out


def _unit_xyzw(rot_wxyz: F32) -> F32:
    """The ``.ply``'s w, x, y, z quaternions as unit x, y, z, w; an unusable one is the identity."""
    q = np.empty_like(rot_wxyz)
    q[:, 0:3] = rot_wxyz[:, 1:4]
    q[:, 3] = rot_wxyz[:, 0]
    norm = np.sqrt(np.einsum("ij,ij->i", q, q))
    bad = ~(np.isfinite(norm) & (norm > 0))
    q[bad] = (0.0, 0.0, 0.0, 1.0)
    norm[bad] = 1.0
    q /= norm[:, None]
    return q


def _smallest_three(rot_wxyz: F32) -> npt.NDArray[np.uint8]:
    """Quaternions (n, 4) in the ``.ply``'s w, x, y, z order -> 4 bytes each (see module doc)."""
    q = _unit_xyzw(rot_wxyz)
    absq = np.abs(q)
    largest = np.argmax(absq, axis=1)  # first of equals, like the reference's strict '>'
    rows = np.arange(len(q))
    negate = q[rows, largest] < 0
    mags = (np.float32(_MASK9) * (absq / _SQRT1_2) + np.float32(0.5)).astype(np.uint32)
    signs = ((q < 0) ^ negate[:, None]).astype(np.uint32)
    fields = (signs << np.uint32(9)) | np.minimum(mags, np.uint32(_MASK9))
    comp = largest.astype(np.uint32)
    for i in range(4):
        keep = largest != i
        comp = np.where(keep, (comp << np.uint32(10)) | fields[:, i], comp)
    out: npt.NDArray[np.uint8] = comp.astype("<u4").view(np.uint8).reshape(len(q), 4)
    return out


def _xyz_w_positive(rot_wxyz: F32) -> npt.NDArray[np.uint8]:
    """Quaternions (n, 4) in the ``.ply``'s w, x, y, z order -> SPZ v2's 3 bytes each.

    Normalised (an unusable one becomes the identity, as for v3), negated when w < 0 so that
    readers can take w = +sqrt(1 - x² - y² - z²), then x, y, z as ``c × 127.5 + 127.5``.
    """
    q = _unit_xyzw(rot_wxyz)
    q[q[:, 3] < 0] *= np.float32(-1)
    return _round_bytes(q[:, 0:3] * np.float32(127.5) + np.float32(127.5))


def spz_payload(records: npt.NDArray[np.void], antialiased: bool = False, version: int = VERSION) -> bytes:
    """The uncompressed SPZ content (header + attribute blocks) of ``version`` for a vertex table."""
    if records.dtype != VERTEX_DTYPE or records.ndim != 1:
        raise ValueError(f"expected a 1-D VERTEX_DTYPE array, got {records.dtype}")
    if version not in VERSIONS:
        raise ValueError(f"SPZ version {version!r} cannot be written; choose one of {VERSIONS}")
    n = len(records)
    if n >= 1 << 32:
        raise ValueError(f"{n} Gaussians do not fit SPZ's 32-bit count")
    t = np.ascontiguousarray(records).view(np.float32).reshape(n, _NCOLS)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        positions = _fixed24(t[:, 0:3])
        alphas = _round_bytes(np.float32(1.0) / (np.float32(1.0) + np.exp(-t[:, 6])) * np.float32(255.0))
        colors = _round_bytes(t[:, 3:6] * np.float32(COLOR_SCALE * 255.0) + np.float32(0.5 * 255.0))
        scales = _round_bytes((t[:, 7:10] + np.float32(10.0)) * np.float32(16.0))
        rot = t[:, 10:14]
        rotations = _smallest_three(rot) if version == 3 else _xyz_w_positive(rot)
    flags = FLAG_ANTIALIASED if antialiased else 0
    header = HEADER.pack(MAGIC, version, n, 0, FRACTIONAL_BITS, flags, 0)
    return b"".join(
        [
            header,
            positions.tobytes(),
            alphas.tobytes(),
            colors.tobytes(),
            scales.tobytes(),
            rotations.tobytes(),
        ]
    )


def spz_bytes(records: npt.NDArray[np.void], version: int = VERSION) -> bytes:
    """The ``.spz`` file content: the payload gzipped (mtime 0, so equal input, equal bytes)."""
    return gzip.compress(spz_payload(records, version=version), compresslevel=GZIP_LEVEL, mtime=0)


def write_spz(
    path: Path, records: npt.NDArray[np.void], meta: SceneMeta | None = None, version: int = VERSION
) -> None:
    """Write the ``.spz`` of ``records`` to ``path`` atomically (``meta`` has no place in SPZ)."""
    data = spz_bytes(records, version)
    with atomic_writer(path) as f:
        f.write(data)


def read_spz_payload(path: Path) -> bytes:
    """The decompressed content of a gzip-based (version 1-3) ``.spz``; ValueError otherwise."""
    raw = path.read_bytes()
    if raw[:4] == b"NGSP":
        version = struct.unpack_from("<I", raw, 4)[0] if len(raw) >= 8 else "?"
        raise ValueError(f"{path}: SPZ version {version} (zstd streams) is not supported, only 1-3")
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: not a gzip-compressed SPZ file ({exc})") from exc


def _decode_rotations_v3(packed: npt.NDArray[np.uint8]) -> F32:
    comp = packed.view("<u4").reshape(-1).astype(np.uint32)
    largest = (comp >> np.uint32(30)).astype(np.intp)
    q = np.zeros((len(comp), 4), dtype=np.float32)
    sum_squares = np.zeros(len(comp), dtype=np.float32)
    for i in range(3, -1, -1):
        take = largest != i
        mag = (comp & np.uint32(_MASK9)).astype(np.float32)
        negative = ((comp >> np.uint32(9)) & np.uint32(1)).astype(bool)
        value = _SQRT1_2 * mag / np.float32(_MASK9)
        value = np.where(negative, -value, value)
        q[:, i] = np.where(take, value, q[:, i])
        sum_squares += np.where(take, value * value, np.float32(0))
        comp = np.where(take, comp >> np.uint32(10), comp)
    rows = np.arange(len(q))
    q[rows, largest] = np.sqrt(np.maximum(np.float32(0), np.float32(1) - sum_squares))
    return q


def _decode_rotations_v2(packed: npt.NDArray[np.uint8]) -> F32:
    xyz = packed.reshape(-1, 3).astype(np.float32) / np.float32(127.5) - np.float32(1)
    w = np.sqrt(np.maximum(np.float32(0), np.float32(1) - np.einsum("ij,ij->i", xyz, xyz)))
    out: F32 = np.concatenate([xyz, w[:, None]], axis=1)
    return out


def from_spz_payload(data: bytes, where: str = "spz") -> Gaussians:
    """Decode an uncompressed SPZ (versions 1-3) into linear-space Gaussians.

    Colours are read back as sRGB ``0.5 + SH_C0 × f_dc`` and linearised, like the ``.ply``;
    opacity is ``byte / 255`` (0 and 1 can appear). Higher SH degrees are skipped.
    """
    if len(data) < HEADER.size:
        raise ValueError(f"{where}: too short for an SPZ header")
    magic, version, n, sh_degree, frac_bits, _flags, _ = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"{where}: bad SPZ magic 0x{magic:08x}")
    if version not in (1, 2, 3):
        raise ValueError(f"{where}: SPZ version {version} is not supported, only 1-3")
    if sh_degree not in _SH_DIM:
        raise ValueError(f"{where}: SH degree {sh_degree} is out of range")
    pos_size = 6 if version == 1 else 9
    rot_size = 4 if version >= 3 else 3
    sizes = [pos_size, 1, 3, 3, rot_size, _SH_DIM[sh_degree] * 3]
    need = HEADER.size + n * sum(sizes)
    if len(data) < need:
        raise ValueError(f"{where}: {len(data)} bytes, {need} needed for {n} Gaussians")
    blocks: list[npt.NDArray[np.uint8]] = []
    offset = HEADER.size
    buf = np.frombuffer(data, dtype=np.uint8)
    for size in sizes:
        blocks.append(buf[offset : offset + n * size].reshape(n, size))
        offset += n * size
    pos, alpha, color, scale, rot, _sh = blocks
    if version == 1:
        means = pos.copy().view("<f2").astype(np.float32).reshape(n, 3)
    else:
        b = pos.reshape(n, 3, 3).astype(np.int32)
        fixed = b[:, :, 0] | (b[:, :, 1] << 8) | (b[:, :, 2] << 16)
        fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
        means = (fixed.astype(np.float32) * np.float32(1.0 / (1 << frac_bits))).astype(np.float32)
    xyzw = _decode_rotations_v3(rot) if version >= 3 else _decode_rotations_v2(rot)
    quaternions = np.ascontiguousarray(np.concatenate([xyzw[:, 3:4], xyzw[:, 0:3]], axis=1))
    f_dc = (color.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(COLOR_SCALE)
    srgb = f_dc * np.float32(SH_C0) + np.float32(0.5)
    scales: F32 = np.exp(scale.astype(np.float32) / np.float32(16) - np.float32(10))
    return Gaussians(
        means=means,
        scales=scales,
        quaternions=quaternions,
        colors=srgb_to_linear(srgb),
        opacities=alpha.reshape(n).astype(np.float32) / np.float32(255),
    )


def read_spz(path: Path) -> Gaussians:
    """Read a gzip-based ``.spz`` (versions 1-3) back into Gaussians, in stored order."""
    return from_spz_payload(read_spz_payload(path), str(path))
