"""antimatter15's ``.splat``: 32 bytes per Gaussian, sorted, for web viewers.

Record layout (little-endian, no header): position 3×f32, linear scale 3×f32, RGBA 4×u8,
rotation 4×u8 (w, x, y, z mapped from [-1, 1] to [0, 255]).

The bytes must equal what antimatter15's reference ``convert.py`` produces from our ``.ply``,
so every step below repeats that script's float32 arithmetic in the same order, only
vectorised. Two details matter for bit-identity:

* the sort is numpy's default (unstable) ``argsort`` of the same float32 key array, so ties
  fall the same way;
* the script divides each quaternion by ``np.linalg.norm`` of a float32 4-vector. That is
  ``x.dot(x)``, which numpy hands to BLAS ``sdot``; for fewer than 32 elements OpenBLAS's
  x86-64 kernel rounds each square to float32, sums them in order in float64 and returns
  float32, and ``sqrt`` then runs in float32. Measured bit-exact against the per-row call on
  this stack (numpy 2.4, OpenBLAS 0.3.31); summing in float32, squaring in float64 or taking
  the square root in float64 each disagree in 5-7% of random rows (a BLAS with another
  kernel could differ too; tests/formats/test_splat.py pins this).

Precision of :func:`read_splat` (what the format throws away): positions and scales are the
float32 values of the ``.ply`` (scales through one ``exp(log(s))``, a few ulp); colours and
opacity are truncated (not rounded) to 1/255 steps of the sRGB value, and clipped to [0, 1];
rotations are truncated to 1/128 steps per component before renormalisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sharpmld.core.fsio import atomic_writer
from sharpmld.formats.gaussians import F32, Gaussians
from sharpmld.formats.ply import SH_C0, VERTEX_DTYPE, VERTEX_PROPERTIES, run_chunked, srgb_to_linear

SPLAT_DTYPE = np.dtype(
    [
        ("position", "<f4", (3,)),
        ("scale", "<f4", (3,)),
        ("rgba", "u1", (4,)),
        ("rotation", "u1", (4,)),
    ]
)
RECORD_SIZE = 32

# Rows encoded per step: the temporaries stay in cache and peak memory stays near the output.
_CHUNK = 1 << 15
_NCOLS = len(VERTEX_PROPERTIES)


def _sort_key(records: npt.NDArray[np.void], out: F32, start: int, stop: int) -> None:
    """``out[start:stop]`` = the reference's key ``-exp(Σ log scale) / (1 + exp(-opacity))``,
    evaluated in the same order on contiguous float32 arrays (so ``exp`` is the same kernel)."""
    part = records[start:stop]
    key = out[start:stop]
    np.add(part["scale_0"], part["scale_1"], out=key)
    key += part["scale_2"]
    np.exp(key, out=key)
    np.negative(key, out=key)
    denominator = np.negative(part["opacity"])
    np.exp(denominator, out=denominator)
    denominator += np.float32(1)
    key /= denominator


def splat_order(records: npt.NDArray[np.void]) -> npt.NDArray[np.intp]:
    """The reference's draw order: largest ``volume × opacity`` first (unstable argsort)."""
    key = np.empty(len(records), dtype=np.float32)
    run_chunked(len(records), 4 * _CHUNK, lambda start, stop: _sort_key(records, key, start, stop))
    return np.argsort(key)


def _norm_of_columns(q: F32) -> F32:
    """Per-quaternion ``np.linalg.norm`` of a (4, m) float32 array of components, bit for bit."""
    squares = q * q
    total = squares[0].astype(np.float64)
    for i in range(1, 4):
        total += squares[i]
    out: F32 = np.sqrt(total.astype(np.float32))
    return out


def _encode(t: F32, out: npt.NDArray[np.void]) -> None:
    """Encode ``t`` (vertex rows as an (m, 14) float32 table, in draw order) into ``out``.

    The arithmetic runs on contiguous per-property rows of a transposed copy: plain 1-D loops
    instead of one tiny inner loop per Gaussian, and the same kernels as the reference's small
    contiguous arrays. The steps are the reference's, in its order.
    """
    out["position"] = t[:, 0:3]
    cols = np.ascontiguousarray(t.T)  # (14, m)
    scale = cols[7:10]
    np.exp(scale, out=scale)
    out["scale"] = scale.T
    color = np.empty((4, len(t)), dtype=np.float32)
    # Python-float constant times float32 stays float32 (NEP 50), as in the reference.
    np.multiply(cols[3:6], SH_C0, out=color[0:3])
    color[0:3] += np.float32(0.5)
    alpha = color[3]
    np.negative(cols[6], out=alpha)
    np.exp(alpha, out=alpha)
    alpha += np.float32(1)
    np.divide(np.float32(1), alpha, out=alpha)
    color *= np.float32(255)
    np.clip(color, 0, 255, out=color)
    out["rgba"] = color.astype(np.uint8).T
    q = cols[10:14]
    q /= _norm_of_columns(q)
    q *= np.float32(128)
    q += np.float32(128)
    np.clip(q, 0, 255, out=q)
    out["rotation"] = q.astype(np.uint8).T


def splat_array(records: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    """The sorted (N,) array of SPLAT_DTYPE records for a VERTEX_DTYPE table."""
    if records.dtype != VERTEX_DTYPE or records.ndim != 1:
        raise ValueError(f"expected a 1-D VERTEX_DTYPE array, got {records.dtype}")
    records = np.ascontiguousarray(records)
    order = splat_order(records)
    out = np.empty(len(records), dtype=SPLAT_DTYPE)
    # Gather as plain float32 rows: np.take of 56-byte rows is ~8x faster than fancy-indexing
    # the structured array.
    table = records.view(np.float32).reshape(len(records), _NCOLS)

    # NaN (zero or overflowing quaternions, NaN inputs) meets the uint8 cast exactly as in the
    # reference; run_chunked only silences the warnings.
    def encode(start: int, stop: int) -> None:
        _encode(np.take(table, order[start:stop], axis=0), out[start:stop])

    run_chunked(len(records), _CHUNK, encode)
    return out


def splat_bytes(records: npt.NDArray[np.void]) -> memoryview:
    """The ``.splat`` file content for a vertex table: 32 bytes per Gaussian."""
    return splat_array(records).view(np.uint8).data


def write_splat(path: Path, records: npt.NDArray[np.void]) -> None:
    """Write the ``.splat`` of ``records`` to ``path`` atomically."""
    data = splat_bytes(records)
    with atomic_writer(path) as f:
        f.write(data)


def read_splat_array(path: Path) -> npt.NDArray[np.void]:
    """The raw SPLAT_DTYPE records of a ``.splat``; ValueError if the size is not 32·N."""
    size = path.stat().st_size
    if size % RECORD_SIZE:
        raise ValueError(f"{path}: {size} bytes is not a whole number of 32-byte splat records")
    records: npt.NDArray[np.void] = np.fromfile(path, dtype=SPLAT_DTYPE)
    return records


def from_splat_array(data: npt.NDArray[Any]) -> Gaussians:
    """Decode splat records into linear-space Gaussians (precision: see module docstring).

    Colours are read as sRGB ``byte / 255`` and linearised; opacity is ``byte / 255`` (so 0 or
    1 can appear); a rotation whose bytes all decode to zero becomes the identity.
    """
    rgba = data["rgba"].astype(np.float32) / np.float32(255)
    q = (data["rotation"].astype(np.float32) - np.float32(128)) / np.float32(128)
    norm = np.sqrt(np.einsum("ij,ij->i", q, q))
    degenerate = norm == 0
    q[degenerate] = (1.0, 0.0, 0.0, 0.0)
    norm[degenerate] = 1.0
    q /= norm[:, None]
    return Gaussians(
        means=np.ascontiguousarray(data["position"]),
        scales=np.ascontiguousarray(data["scale"]),
        quaternions=q,
        colors=srgb_to_linear(rgba[:, 0:3]),
        opacities=np.ascontiguousarray(rgba[:, 3]),
    )


def read_splat(path: Path) -> Gaussians:
    """Read a ``.splat`` back into Gaussians, in its stored (sorted) order."""
    return from_splat_array(read_splat_array(path))
