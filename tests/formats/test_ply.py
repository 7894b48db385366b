"""The ml-sharp ``.ply`` layout: values and metadata, read back by plyfile and by us.

The vertex-only default layout is checked against this one in ``test_layouts.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from sharpmld.formats.gaussians import Gaussians, SceneMeta
from sharpmld.formats.ply import (
    SH_C0,
    VERTEX_DTYPE,
    VERTEX_PROPERTIES,
    from_vertex_records,
    linear_to_srgb,
    read_ply,
    read_ply_records,
    srgb_to_linear,
    to_vertex_records,
    write_ply,
)

META = SceneMeta(f_px=1234.5, width=1536, height=1024)


def random_gaussians(n: int, seed: int = 0) -> Gaussians:
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((n, 3))
    means[:, 2] = rng.uniform(0.5, 20.0, n)
    return Gaussians(
        means=means.astype(np.float32),
        scales=(10.0 ** rng.uniform(-4, 0, (n, 3))).astype(np.float32),
        quaternions=rng.standard_normal((n, 4)).astype(np.float32),
        colors=rng.uniform(0, 1, (n, 3)).astype(np.float32),
        opacities=rng.uniform(0.001, 0.999, n).astype(np.float32),
    )


def written(tmp_path: Path, g: Gaussians, meta: SceneMeta = META) -> Path:
    path = tmp_path / "scene.ply"
    write_ply(path, to_vertex_records(g), meta, layout="ml-sharp")
    return path


def test_header_layout_is_ml_sharps(tmp_path: Path) -> None:
    path = written(tmp_path, random_gaussians(7))
    header = path.read_bytes().split(b"end_header\n")[0].decode("ascii")
    expected = ["ply", "format binary_little_endian 1.0", "element vertex 7"]
    expected += [f"property float {name}" for name in VERTEX_PROPERTIES]
    for name, kind, count in [
        ("extrinsic", "float", 16),
        ("intrinsic", "float", 9),
        ("image_size", "uint", 2),
        ("frame", "int", 2),
        ("disparity", "float", 2),
        ("color_space", "uchar", 1),
        ("version", "uchar", 3),
    ]:
        expected += [f"element {name} {count}", f"property {kind} {name}"]
    assert header.split("\n")[:-1] == expected
    assert header.endswith("\n")


def test_plyfile_reads_the_same_layout(tmp_path: Path) -> None:
    ply = PlyData.read(str(written(tmp_path, random_gaussians(5))))
    assert [e.name for e in ply.elements] == [
        "vertex",
        "extrinsic",
        "intrinsic",
        "image_size",
        "frame",
        "disparity",
        "color_space",
        "version",
    ]
    assert ply["vertex"].data.dtype == VERTEX_DTYPE
    assert ply.byte_order == "<"
    kinds = {e.name: e.properties[0].val_dtype for e in ply.elements[1:]}
    assert kinds == {
        "extrinsic": "f4",
        "intrinsic": "f4",
        "image_size": "u4",
        "frame": "i4",
        "disparity": "f4",
        "color_space": "u1",
        "version": "u1",
    }


def test_file_size_is_header_plus_packed_tables(tmp_path: Path) -> None:
    path = written(tmp_path, random_gaussians(100))
    data = path.read_bytes()
    header_len = data.index(b"end_header\n") + len(b"end_header\n")
    meta_bytes = 16 * 4 + 9 * 4 + 2 * 4 + 2 * 4 + 2 * 4 + 1 + 3
    assert len(data) == header_len + 100 * 56 + meta_bytes


def test_vertex_values_follow_ml_sharps_encoding(tmp_path: Path) -> None:
    g = random_gaussians(500)
    v = PlyData.read(str(written(tmp_path, g)))["vertex"].data
    xyz = np.stack([v["x"], v["y"], v["z"]], axis=1)
    np.testing.assert_array_equal(xyz, g.means)
    c = g.colors.astype(np.float64)
    srgb = np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)
    dc = np.stack([v["f_dc_0"], v["f_dc_1"], v["f_dc_2"]], axis=1)
    np.testing.assert_allclose(dc, (srgb - 0.5) / SH_C0, rtol=1e-5, atol=2e-5)
    o = g.opacities.astype(np.float64)
    np.testing.assert_allclose(v["opacity"], np.log(o / (1 - o)), rtol=1e-5, atol=1e-5)
    scales = np.stack([v["scale_0"], v["scale_1"], v["scale_2"]], axis=1)
    np.testing.assert_allclose(scales, np.log(g.scales.astype(np.float64)), rtol=1e-6)
    rot = np.stack([v[f"rot_{i}"] for i in range(4)], axis=1)
    np.testing.assert_array_equal(rot, g.quaternions)


def test_metadata_elements(tmp_path: Path) -> None:
    g = random_gaussians(1000)
    ply = PlyData.read(str(written(tmp_path, g)))
    np.testing.assert_array_equal(ply["extrinsic"]["extrinsic"], np.eye(4).ravel())
    np.testing.assert_array_equal(ply["intrinsic"]["intrinsic"], [1234.5, 0, 768, 0, 1234.5, 512, 0, 0, 1])
    np.testing.assert_array_equal(ply["image_size"]["image_size"], [1536, 1024])
    np.testing.assert_array_equal(ply["frame"]["frame"], [1, 1000])
    disparity = np.quantile(1.0 / g.means[:, 2].astype(np.float64), [0.1, 0.9])
    np.testing.assert_allclose(ply["disparity"]["disparity"], disparity, rtol=1e-6)
    np.testing.assert_array_equal(ply["color_space"]["color_space"], [0])
    np.testing.assert_array_equal(ply["version"]["version"], [1, 5, 0])


def test_read_ply_round_trip(tmp_path: Path) -> None:
    g = random_gaussians(2000)
    back, meta = read_ply(written(tmp_path, g))
    assert meta == META
    assert len(back) == len(g)
    np.testing.assert_array_equal(back.means, g.means)
    np.testing.assert_array_equal(back.quaternions, g.quaternions)
    np.testing.assert_allclose(back.scales, g.scales, rtol=1e-5)
    np.testing.assert_allclose(back.colors, g.colors, atol=1e-5)
    np.testing.assert_allclose(back.opacities, g.opacities, atol=1e-6)
    for field in ("means", "scales", "quaternions", "colors", "opacities"):
        assert getattr(back, field).dtype == np.float32, field


def test_raw_records_read_back_unchanged(tmp_path: Path) -> None:
    records = to_vertex_records(random_gaussians(300))
    path = tmp_path / "a.ply"
    write_ply(path, records, META, layout="ml-sharp")
    again, meta = read_ply_records(path)
    assert again.tobytes() == records.tobytes()
    assert meta == META


def test_colours_outside_unit_range_do_not_give_nan() -> None:
    x = np.array([-1.0, -1e-6, 0.0, 0.0031308, 0.5, 1.0, 3.0], dtype=np.float32)
    s = linear_to_srgb(x)
    assert np.isfinite(s).all()
    np.testing.assert_allclose(srgb_to_linear(s), x, rtol=1e-5, atol=1e-7)


def test_empty_scene(tmp_path: Path) -> None:
    g = random_gaussians(0)
    back, meta = read_ply(written(tmp_path, g))
    assert len(back) == 0
    assert meta == META


def test_missing_property_is_rejected(tmp_path: Path) -> None:
    records = to_vertex_records(random_gaussians(4))
    kept = [name for name in VERTEX_PROPERTIES if name != "rot_3"]
    partial = np.empty(4, dtype=[(name, "<f4") for name in kept])
    for name in kept:
        partial[name] = records[name]
    path = tmp_path / "partial.ply"
    PlyData([PlyElement.describe(partial, "vertex")]).write(str(path))
    with pytest.raises(ValueError, match="rot_3"):
        read_ply(path)
    with pytest.raises(ValueError, match="rot_3"):
        read_ply_records(path)


def test_plain_point_cloud_and_garbage_are_rejected(tmp_path: Path) -> None:
    cloud = tmp_path / "cloud.ply"
    pts = np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    PlyData([PlyElement.describe(pts, "vertex")]).write(str(cloud))
    with pytest.raises(ValueError, match="not a 3DGS ply"):
        read_ply(cloud)
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"not a ply at all")
    with pytest.raises(ValueError, match="not a readable PLY"):
        read_ply(garbage)


def test_other_trainers_layout_is_reduced_to_ours(tmp_path: Path) -> None:
    records = to_vertex_records(random_gaussians(10))
    names = ["nx", *reversed(VERTEX_PROPERTIES), "f_rest_0"]
    other = np.zeros(10, dtype=[(name, "<f4") for name in names])
    for name in VERTEX_PROPERTIES:
        other[name] = records[name]
    path = tmp_path / "other.ply"
    PlyData([PlyElement.describe(other, "vertex")]).write(str(path))
    got, meta = read_ply_records(path)
    assert got.tobytes() == records.tobytes() and meta is None
    back, meta = read_ply(path)
    assert meta is None
    np.testing.assert_array_equal(back.means, from_vertex_records(records).means)


def test_wrong_record_dtype_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="VERTEX_DTYPE"):
        write_ply(tmp_path / "x.ply", np.zeros(3, dtype=np.float32), META)
    assert list(tmp_path.iterdir()) == []
