"""The slow, conventional ways of writing the two output formats, as baselines.

* ``.splat``: the rules of antimatter15's reference ``convert.py`` applied one Gaussian at a
  time (this is our own per-row code following those rules, see sharpmld/formats/splat.py):
  sort by ``-exp(Σ log scale) / (1 + exp(-opacity))``, then per row position, ``exp`` of the
  log scales, ``(0.5 + SH_C0 · f_dc, sigmoid(opacity)) · 255`` clipped to bytes, and the
  quaternion divided by its ``np.linalg.norm``, ``· 128 + 128`` clipped to bytes.
* ``.ply``: ml-sharp's ``save_ply`` approach (our own reimplementation): a float32 attribute
  matrix, ``elements[:] = list(map(tuple, attributes))`` into a structured array, then every
  element through ``plyfile.PlyElement.describe`` and ``PlyData.write``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import numpy.typing as npt
from plyfile import PlyData, PlyElement

from sharpmld.formats.gaussians import Gaussians, SceneMeta
from sharpmld.formats.ply import SH_C0, VERTEX_PROPERTIES, linear_to_srgb


def splat_per_row(vertices: npt.NDArray[np.void]) -> bytes:
    """The ``.splat`` bytes of a vertex table, computed row by row like the reference script."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        volume = np.exp(vertices["scale_0"] + vertices["scale_1"] + vertices["scale_2"])
        order = np.argsort(-volume / (1 + np.exp(-vertices["opacity"])))
        out = io.BytesIO()
        for index in order:
            row = vertices[index]
            xyz = np.array([row["x"], row["y"], row["z"]], dtype=np.float32)
            scale = np.exp(np.array([row["scale_0"], row["scale_1"], row["scale_2"]], dtype=np.float32))
            rgba = np.array(
                [
                    0.5 + SH_C0 * row["f_dc_0"],
                    0.5 + SH_C0 * row["f_dc_1"],
                    0.5 + SH_C0 * row["f_dc_2"],
                    1 / (1 + np.exp(-row["opacity"])),
                ]
            )
            quat = np.array([row["rot_0"], row["rot_1"], row["rot_2"], row["rot_3"]], dtype=np.float32)
            unit = quat / np.linalg.norm(quat)
            out.write(xyz.tobytes())
            out.write(scale.tobytes())
            out.write((rgba * 255).clip(0, 255).astype(np.uint8).tobytes())
            out.write((unit * 128 + 128).clip(0, 255).astype(np.uint8).tobytes())
    return out.getvalue()


def write_splat_per_row(path: Path, vertices: npt.NDArray[np.void]) -> None:
    path.write_bytes(splat_per_row(vertices))


def _attributes(g: Gaussians) -> npt.NDArray[np.float32]:
    """The (N, 14) float32 matrix save_ply concatenates: xyz, f_dc, opacity, log scales, quats."""
    with np.errstate(divide="ignore"):
        f_dc = (linear_to_srgb(g.colors) - np.float32(0.5)) / np.float32(SH_C0)
        opacity = np.log(g.opacities / (1 - g.opacities))[:, None]
        return np.concatenate(
            [g.means, f_dc, opacity, np.log(g.scales), g.quaternions], axis=1, dtype=np.float32
        )


def write_ply_conventional(path: Path, g: Gaussians, meta: SceneMeta) -> None:
    """The vertex table through tuples and plyfile, as ml-sharp writes it."""
    attributes = _attributes(g)
    elements = np.empty(len(g), dtype=[(name, "f4") for name in VERTEX_PROPERTIES])
    elements[:] = list(map(tuple, attributes))
    z = attributes[:, 2]
    disparity = np.quantile(1.0 / z, [0.1, 0.9]).astype(np.float32)
    f = meta.f_px
    extra = [
        ("extrinsic", "f4", np.eye(4).ravel()),
        ("intrinsic", "f4", [f, 0, meta.width * 0.5, 0, f, meta.height * 0.5, 0, 0, 1]),
        ("image_size", "u4", [meta.width, meta.height]),
        ("frame", "i4", [1, len(g)]),
        ("disparity", "f4", disparity),
        ("color_space", "u1", [0]),
        ("version", "u1", [1, 5, 0]),
    ]
    parts = [PlyElement.describe(elements, "vertex")]
    for name, dtype, values in extra:
        table = np.empty(len(values), dtype=[(name, dtype)])
        table[name] = values
        parts.append(PlyElement.describe(table, name))
    PlyData(parts).write(str(path))
