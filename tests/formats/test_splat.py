"""The ``.splat`` writer against a slow, row-by-row restatement of the reference rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from plyfile import PlyData

from sharpmld.formats import splat
from sharpmld.formats.gaussians import Gaussians, SceneMeta
from sharpmld.formats.ply import VERTEX_DTYPE, to_vertex_records, write_ply
from sharpmld.formats.registry import convert
from sharpmld.formats.splat import (
    RECORD_SIZE,
    SPLAT_DTYPE,
    _norm_of_columns,
    read_splat,
    splat_bytes,
    splat_order,
    write_splat,
)

META = SceneMeta(f_px=1000.0, width=640, height=480)
SH_C0 = 0.28209479177387814


def reference_splat(vertex: Any) -> bytes:
    """One row at a time, the way antimatter15's convert.py does it (our own restatement).

    ``vertex`` is anything indexable by property name and by row (a plyfile element or a
    structured array), so that this runs on exactly what plyfile reads from disk.
    """
    out = bytearray()
    with np.errstate(all="ignore"):
        order = np.argsort(
            -np.exp(vertex["scale_0"] + vertex["scale_1"] + vertex["scale_2"])
            / (1 + np.exp(-vertex["opacity"]))
        )
        for idx in order:
            v = vertex[idx]
            position = np.array([v["x"], v["y"], v["z"]], dtype=np.float32)
            scales = np.exp(np.array([v["scale_0"], v["scale_1"], v["scale_2"]], np.float32))
            rot = np.array([v["rot_0"], v["rot_1"], v["rot_2"], v["rot_3"]], dtype=np.float32)
            color = np.array(
                [
                    0.5 + SH_C0 * v["f_dc_0"],
                    0.5 + SH_C0 * v["f_dc_1"],
                    0.5 + SH_C0 * v["f_dc_2"],
                    1 / (1 + np.exp(-v["opacity"])),
                ]
            )
            assert color.dtype == np.float32
            out += position.tobytes()
            out += scales.tobytes()
            out += (color * 255).clip(0, 255).astype(np.uint8).tobytes()
            unit = rot / np.linalg.norm(rot)
            out += (unit * 128 + 128).clip(0, 255).astype(np.uint8).tobytes()
    return bytes(out)


def awkward_quaternions(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    q = rng.standard_normal((n, 4))
    q *= 10.0 ** rng.integers(-20, 20, (n, 1))  # whole rows tiny or huge
    q[: n // 4] *= 10.0 ** rng.integers(-12, 12, (n // 4, 4))  # components far apart
    q[n // 4 : n // 4 + 20] = [0.0, 0.0, 0.0, 0.0]  # zero: NaN inside the reference
    q[n // 4 + 20 : n // 4 + 40] = [1.0, 0.0, 0.0, 0.0]  # exactly 256 before the clip
    q[n // 4 + 40 : n // 4 + 60] = [-1.0, 0.0, 0.0, 0.0]
    q[n // 4 + 60 : n // 4 + 80] = [1e-30, 3e-38, 0.0, 0.0]  # squares underflow
    # (±1, ±1, ±1, ±1) moved by a few ulp: each component lands within an ulp of the byte
    # boundary 64/128, so a norm one ulp off (float32 sum, float64 squares) changes bytes.
    m = n // 5
    signs = rng.choice([-1.0, 1.0], (m, 4))
    ulps = 1 + rng.integers(-8, 9, (m, 4)) * 2.0**-23
    q[-m:] = signs * ulps * rng.uniform(0.5, 2, (m, 1))
    return q


def extreme_records(n: int = 2000, seed: int = 7) -> npt.NDArray[np.void]:
    """Vertex rows with huge/tiny scales, logits ±20 and beyond, colours out of range."""
    rng = np.random.default_rng(seed)
    records = np.empty(n, dtype=VERTEX_DTYPE)
    for name in ("x", "y", "z"):
        records[name] = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)
    for i in range(3):
        records[f"f_dc_{i}"] = rng.normal(0, 4, n)  # colours well outside [0, 1]
    records["opacity"] = rng.uniform(-20, 20, n)
    records["opacity"][:50] = rng.choice([-20.0, 20.0, -100.0, 100.0, -np.inf, np.inf], 50)
    for i in range(3):
        records[f"scale_{i}"] = rng.uniform(-12, 3, n)
    records["scale_0"][50:100] = rng.uniform(80, 200, 50)  # exp overflows to inf
    records["scale_1"][100:150] = rng.uniform(-200, -90, 50)  # exp underflows to 0
    q = awkward_quaternions(rng, n)
    for i in range(4):
        records[f"rot_{i}"] = q[:, i]
    # Ties in the sort key: the unstable argsort must break them as the reference does.
    records[200:400] = records[200]
    records[400:600] = records[rng.integers(400, 600, 200)]
    return records


def test_splat_dtype_is_32_bytes() -> None:
    assert SPLAT_DTYPE.itemsize == RECORD_SIZE == 32


def test_bytes_identical_to_reference_rules() -> None:
    records = extreme_records()
    data = bytes(splat_bytes(records))
    assert len(data) == 32 * len(records)
    assert data == reference_splat(records)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bytes_identical_on_ordinary_scenes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    g = Gaussians(
        means=rng.standard_normal((n, 3)).astype(np.float32),
        scales=(10.0 ** rng.uniform(-4, 0, (n, 3))).astype(np.float32),
        quaternions=rng.standard_normal((n, 4)).astype(np.float32),
        colors=rng.uniform(0, 1, (n, 3)).astype(np.float32),
        opacities=rng.uniform(0.001, 0.999, n).astype(np.float32),
    )
    records = to_vertex_records(g)
    assert bytes(splat_bytes(records)) == reference_splat(records)


def test_written_file_matches_reference_run_on_the_ply(tmp_path: Path) -> None:
    records = extreme_records(seed=11)
    ply_path = tmp_path / "scene.ply"
    write_ply(ply_path, records, META)
    expected = reference_splat(PlyData.read(str(ply_path))["vertex"])

    direct = tmp_path / "direct.splat"
    write_splat(direct, records)
    assert direct.read_bytes() == expected

    converted = tmp_path / "converted.splat"
    convert(ply_path, converted)
    assert converted.read_bytes() == expected


def test_chunk_boundaries_do_not_change_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    records = extreme_records(seed=5)
    expected = bytes(splat_bytes(records))
    monkeypatch.setattr(splat, "_CHUNK", 7)  # 2000 rows -> 286 chunks, a ragged last one
    assert bytes(splat_bytes(records)) == expected == reference_splat(records)


def test_column_norms_match_numpy_linalg_norm_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    q = awkward_quaternions(rng, 20_000).astype(np.float32)
    with np.errstate(all="ignore"):
        expected = np.array([np.linalg.norm(row) for row in q], dtype=np.float32)
        got = _norm_of_columns(np.ascontiguousarray(q.T))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


def test_read_splat_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    n = 2000
    q = rng.standard_normal((n, 4))
    g = Gaussians(
        means=rng.standard_normal((n, 3)).astype(np.float32),
        scales=(10.0 ** rng.uniform(-4, 1, (n, 3))).astype(np.float32),
        quaternions=(q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32),
        colors=rng.uniform(0, 1, (n, 3)).astype(np.float32),
        opacities=rng.uniform(0.001, 0.999, n).astype(np.float32),
    )
    records = to_vertex_records(g)
    path = tmp_path / "a.splat"
    write_splat(path, records)
    assert path.stat().st_size == 32 * n
    back = read_splat(path)
    order = splat_order(records)
    np.testing.assert_array_equal(back.means, g.means[order])
    np.testing.assert_allclose(back.scales, g.scales[order], rtol=1e-5)
    # Truncation: decoded values sit at most one step below the source.
    d_opacity = g.opacities[order] - back.opacities
    assert d_opacity.min() >= -1e-6
    assert d_opacity.max() <= 1 / 255 + 1e-6
    np.testing.assert_allclose(back.colors, g.colors[order], atol=0.0095)
    np.testing.assert_allclose(back.quaternions, g.quaternions[order], atol=0.032)
    np.testing.assert_allclose(np.linalg.norm(back.quaternions, axis=1), 1.0, rtol=1e-6)


def test_read_splat_rejects_partial_records(tmp_path: Path) -> None:
    path = tmp_path / "bad.splat"
    path.write_bytes(b"\0" * 33)
    with pytest.raises(ValueError, match="32-byte"):
        read_splat(path)


def test_empty_scene(tmp_path: Path) -> None:
    path = tmp_path / "empty.splat"
    write_splat(path, np.empty(0, dtype=VERTEX_DTYPE))
    assert path.read_bytes() == b""
    assert len(read_splat(path)) == 0
