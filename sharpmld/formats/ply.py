"""The 3DGS ``.ply``, in one of two layouts that share the same vertex element byte for byte.

* ``"3dgs"`` (the default): the vertex element alone, the layout every 3DGS viewer reads.
  Web viewers such as antimatter15/splat and gsplat.js take any element after the vertex
  table for more vertex properties and fail on ml-sharp's metadata, so it is left out.
* ``"ml-sharp"``: exactly as ml-sharp's ``save_ply`` lays it out, with its extra elements
  (camera intrinsics, image size, disparity range, colour space, version) after the vertices,
  for ml-sharp's own tools; header and element order match byte for byte.

The header is written by hand and
the vertex table in one ``write`` of a packed structured array: going through ``plyfile`` for
writing would copy the 66 MB table once more for a full-size scene.

The vertex table built by :func:`to_vertex_records` is also the input of every other writer, so
that a ``.splat`` written next to a ``.ply`` is computed from exactly the float32 values the
``.ply`` stores (and ``sharpmld convert`` gives the same bytes as a direct write).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from plyfile import PlyData, PlyParseError

from sharpmld.core.fsio import atomic_writer
from sharpmld.formats.gaussians import F32, Gaussians, SceneMeta

SH_C0 = 0.28209479177387814
"""Zeroth-order spherical-harmonic constant sqrt(1 / (4π)): DC colour = 0.5 + SH_C0 * f_dc."""

VERTEX_PROPERTIES: tuple[str, ...] = (
    "x",
    "y",
    "z",
    "f_dc_0",
    "f_dc_1",
    "f_dc_2",
    "opacity",
    "scale_0",
    "scale_1",
    "scale_2",
    "rot_0",
    "rot_1",
    "rot_2",
    "rot_3",
)
VERTEX_DTYPE = np.dtype([(name, "<f4") for name in VERTEX_PROPERTIES])
"""One vertex row: 14 little-endian float32, packed (56 bytes), in ml-sharp's order."""
_NCOLS = len(VERTEX_PROPERTIES)

# Rows per step of the vectorised encoders: each step's temporaries stay in cache (whole-array
# passes are memory-bound), and steps run on a few threads, since numpy releases the GIL.
_CHUNK = 1 << 16
_THREADS = max(1, min(4, os.cpu_count() or 1))

LAYOUTS = ("3dgs", "ml-sharp")
"""The ``[outputs] ply_layout`` values; the first is the default."""
DEFAULT_LAYOUT = LAYOUTS[0]

COLOR_SPACE_SRGB = 0
FORMAT_VERSION = (1, 5, 0)
DISPARITY_QUANTILES = (0.1, 0.9)

# (element name, PLY type name, numpy dtype) of the metadata elements, in file order.
_META_LAYOUT: tuple[tuple[str, str, str], ...] = (
    ("extrinsic", "float", "<f4"),
    ("intrinsic", "float", "<f4"),
    ("image_size", "uint", "<u4"),
    ("frame", "int", "<i4"),
    ("disparity", "float", "<f4"),
    ("color_space", "uchar", "u1"),
    ("version", "uchar", "u1"),
)


def linear_to_srgb(x: npt.NDArray[np.floating[Any]]) -> F32:
    """ml-sharp's linearRGB -> sRGB transfer curve, in float32.

    Negative values take the linear branch, and the power is taken of a clamped copy so that
    the unused branch never produces NaN (or a warning) for them.
    """
    x = np.asarray(x, dtype=np.float32)
    knee = np.float32(0.0031308)
    curved = np.power(np.maximum(x, knee), np.float32(1.0 / 2.4))
    curved *= np.float32(1.055)
    curved -= np.float32(0.055)
    out: F32 = np.where(x <= knee, x * np.float32(12.92), curved)
    return out


def srgb_to_linear(x: npt.NDArray[np.floating[Any]]) -> F32:
    """Inverse of :func:`linear_to_srgb` (the standard sRGB decoding curve), in float32."""
    x = np.asarray(x, dtype=np.float32)
    knee = np.float32(0.04045)
    curved = np.maximum(x, knee)
    curved += np.float32(0.055)
    curved /= np.float32(1.055)
    np.power(curved, np.float32(2.4), out=curved)
    out: F32 = np.where(x <= knee, x / np.float32(12.92), curved)
    return out


def run_chunked(n: int, chunk: int, step: Callable[[int, int], None]) -> None:
    """Call ``step(start, stop)`` over ``[0, n)`` in chunks, on up to ``_THREADS`` threads.

    Each step runs with numpy's divide/overflow/invalid warnings silenced (``np.errstate`` is
    per thread, so it is set here rather than by the caller): the encoders produce ±inf and
    NaN on purpose, exactly where the reference code does.
    """

    def quiet(start: int) -> None:
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            step(start, min(start + chunk, n))

    starts = range(0, n, max(chunk, 1))
    if _THREADS == 1 or len(starts) <= 1:
        for start in starts:
            quiet(start)
        return
    with ThreadPoolExecutor(min(_THREADS, len(starts)), "encode") as pool:
        for done in [pool.submit(quiet, start) for start in starts]:
            done.result()


def to_vertex_records(g: Gaussians) -> npt.NDArray[np.void]:
    """Encode ``g`` into the packed vertex table (the values ml-sharp's ``save_ply`` stores).

    Colours go linear RGB -> sRGB -> DC coefficient, opacities to logits, scales to logs.
    Opacities of exactly 0 or 1 and zero scales give ±inf, as ml-sharp's torch code does.
    Every value is computed on contiguous rows and then stored into the interleaved table, in
    chunks on a few threads; the arithmetic is the same elementwise float32 sequence whatever
    the chunking, so the bytes do not depend on it.
    """
    n = len(g)
    records = np.empty(n, dtype=VERTEX_DTYPE)
    table = records.view(np.float32).reshape(n, _NCOLS)
    opacities = g.opacities.astype(np.float32, copy=False)
    scales = g.scales.astype(np.float32, copy=False)

    def encode(start: int, stop: int) -> None:
        rows = table[start:stop]
        rows[:, 0:3] = g.means[start:stop]
        dc = linear_to_srgb(g.colors[start:stop])
        dc -= np.float32(0.5)
        dc /= np.float32(SH_C0)
        rows[:, 3:6] = dc
        o = opacities[start:stop]
        rows[:, 6] = np.log(o / (np.float32(1.0) - o))
        rows[:, 7:10] = np.log(scales[start:stop])
        rows[:, 10:14] = g.quaternions[start:stop]

    run_chunked(n, _CHUNK, encode)
    return records


def _meta_values(records: npt.NDArray[np.void], meta: SceneMeta) -> list[npt.NDArray[Any]]:
    """The metadata elements' values, in ``_META_LAYOUT`` order."""
    z = records["z"]
    if z.size:
        with np.errstate(divide="ignore"):
            disparity = np.quantile(np.float32(1.0) / z, DISPARITY_QUANTILES)
    else:
        disparity = np.zeros(2)
    f = float(meta.f_px)
    intrinsic = [f, 0.0, meta.width * 0.5, 0.0, f, meta.height * 0.5, 0.0, 0.0, 1.0]
    values: list[Any] = [
        np.eye(4).ravel(),
        intrinsic,
        [meta.width, meta.height],
        [1, len(records)],
        disparity,
        [COLOR_SPACE_SRGB],
        list(FORMAT_VERSION),
    ]
    return [np.asarray(v).astype(dtype) for v, (_, _, dtype) in zip(values, _META_LAYOUT, strict=True)]


def _header(n: int, meta_values: list[npt.NDArray[Any]]) -> bytes:
    """The ASCII header, spelled the way plyfile writes it (no metadata: vertex-only)."""
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    lines += [f"property float {name}" for name in VERTEX_PROPERTIES]
    layout = _META_LAYOUT if meta_values else ()
    for (name, ply_type, _), values in zip(layout, meta_values, strict=True):
        lines += [f"element {name} {values.size}", f"property {ply_type} {name}"]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")


def _check_records(records: npt.NDArray[Any]) -> None:
    if records.dtype != VERTEX_DTYPE or records.ndim != 1:
        raise ValueError(
            f"vertex records must be a 1-D array of VERTEX_DTYPE, got {records.dtype} "
            f"with shape {records.shape}"
        )


def write_ply(
    path: Path, records: npt.NDArray[np.void], meta: SceneMeta | None, layout: str = DEFAULT_LAYOUT
) -> None:
    """Write ``records`` as a 3DGS ``.ply`` in ``layout``, atomically.

    ``meta`` (the camera) is only stored by the ``"ml-sharp"`` layout, which needs it.
    """
    _check_records(records)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown ply layout {layout!r}; known: {', '.join(LAYOUTS)}")
    if layout == "ml-sharp" and meta is None:
        raise ValueError("the ml-sharp .ply layout needs the camera metadata (f_px, image size)")
    meta_values = _meta_values(records, meta) if layout == "ml-sharp" and meta is not None else []
    tail = b"".join(v.tobytes() for v in meta_values)
    body = np.ascontiguousarray(records).view(np.uint8)
    with atomic_writer(path) as f:
        f.write(_header(len(records), meta_values))
        f.write(body.data)
        f.write(tail)


def _load(path: Path) -> PlyData:
    """Parse ``path`` and check it holds a 3DGS vertex table; ValueError otherwise."""
    try:
        ply = PlyData.read(str(path))
    except (PlyParseError, ValueError, EOFError) as exc:
        # OSError (missing file, permissions) passes through: it is not about the content.
        raise ValueError(f"{path}: not a readable PLY file ({exc})") from exc
    names = [e.name for e in ply.elements]
    if "vertex" not in names:
        raise ValueError(f"{path}: not a 3DGS ply (no 'vertex' element)")
    present = {p.name for p in ply["vertex"].properties}
    missing = [name for name in VERTEX_PROPERTIES if name not in present]
    if missing:
        raise ValueError(f"{path}: not a 3DGS ply, vertex lacks {', '.join(missing)}")
    return ply


def _records_of(ply: PlyData) -> npt.NDArray[np.void]:
    data: npt.NDArray[np.void] = ply["vertex"].data
    if data.dtype == VERTEX_DTYPE:
        return np.ascontiguousarray(data)
    # Another trainer's layout (extra f_rest_*, other order or types): keep only our fields.
    records = np.empty(len(data), dtype=VERTEX_DTYPE)
    for name in VERTEX_PROPERTIES:
        records[name] = data[name]
    return records


def _meta_of(ply: PlyData, path: Path) -> SceneMeta:
    names = {e.name for e in ply.elements}
    missing = [n for n in ("intrinsic", "image_size") if n not in names]
    if missing:
        raise ValueError(f"{path}: no camera metadata (missing {', '.join(missing)} element)")
    intrinsic = ply["intrinsic"]["intrinsic"]
    size = ply["image_size"]["image_size"]
    if len(intrinsic) < 1 or len(size) < 2:
        raise ValueError(f"{path}: malformed intrinsic or image_size element")
    return SceneMeta(f_px=float(intrinsic[0]), width=int(size[0]), height=int(size[1]))


def read_ply_records(path: Path) -> tuple[npt.NDArray[np.void], SceneMeta | None]:
    """The raw vertex table plus the camera metadata if the file carries ml-sharp's elements."""
    ply = _load(path)
    try:
        meta: SceneMeta | None = _meta_of(ply, path)
    except ValueError:
        meta = None
    return _records_of(ply), meta


def from_vertex_records(records: npt.NDArray[np.void]) -> Gaussians:
    """Decode a vertex table back into linear-space Gaussians (inverse of to_vertex_records)."""
    _check_records(records)
    table = np.ascontiguousarray(records).view(np.float32).reshape(len(records), _NCOLS)
    with np.errstate(over="ignore"):
        srgb = table[:, 3:6] * np.float32(SH_C0) + np.float32(0.5)
        colors: F32 = srgb_to_linear(srgb)
        opacities: F32 = np.float32(1.0) / (np.float32(1.0) + np.exp(-table[:, 6]))
        scales: F32 = np.exp(table[:, 7:10])
    return Gaussians(
        means=table[:, 0:3].copy(),
        scales=scales,
        quaternions=table[:, 10:14].copy(),
        colors=colors,
        opacities=opacities,
    )


def read_ply(path: Path) -> tuple[Gaussians, SceneMeta | None]:
    """Read a 3DGS ``.ply`` of either layout; ValueError if it is not one (names what is missing).

    The camera comes back only from an ml-sharp layout (None for a vertex-only file).
    """
    records, meta = read_ply_records(path)
    return from_vertex_records(records), meta
