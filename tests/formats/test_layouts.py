"""Output layouts chosen for viewers: vertex-only or ml-sharp ``.ply``, SPZ version 2 or 3."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from sharpmld.formats.gaussians import SceneMeta
from sharpmld.formats.gltf import read_glb
from sharpmld.formats.ply import read_ply, read_ply_records, to_vertex_records, write_ply
from sharpmld.formats.registry import FORMATS, WriteOptions, convert
from sharpmld.formats.spz import read_spz, spz_payload, write_spz
from tests.formats.test_contract import source

META = SceneMeta(f_px=900.0, width=800, height=600)


def _header(path: Path) -> list[str]:
    return path.read_bytes().split(b"end_header\n")[0].decode("ascii").splitlines()


def test_default_ply_is_vertex_only(tmp_path: Path) -> None:
    path = tmp_path / "scene.ply"
    write_ply(path, to_vertex_records(source(10)), META)
    elements = [line for line in _header(path) if line.startswith("element ")]
    assert elements == ["element vertex 10"]


def test_both_layouts_hold_byte_identical_vertex_data(tmp_path: Path) -> None:
    records = to_vertex_records(source(200))
    plain, sharp = tmp_path / "plain.ply", tmp_path / "sharp.ply"
    write_ply(plain, records, META, layout="3dgs")
    write_ply(sharp, records, META, layout="ml-sharp")
    payload = records.nbytes
    plain_body = plain.read_bytes().split(b"end_header\n", 1)[1]
    sharp_body = sharp.read_bytes().split(b"end_header\n", 1)[1]
    assert len(plain_body) == payload
    assert plain_body == sharp_body[:payload]
    assert len(sharp_body) > payload  # the metadata elements follow
    # The vertex element's header lines are the same too.
    assert _header(plain)[:17] == _header(sharp)[:17]


def test_our_readers_read_both_layouts(tmp_path: Path) -> None:
    records = to_vertex_records(source(50))
    plain, sharp = tmp_path / "plain.ply", tmp_path / "sharp.ply"
    write_ply(plain, records, META, layout="3dgs")
    write_ply(sharp, records, META, layout="ml-sharp")
    for path in (plain, sharp):
        back, _ = read_ply_records(path)
        assert back.tobytes() == records.tobytes()
    assert read_ply_records(plain)[1] is None
    assert read_ply_records(sharp)[1] == SceneMeta(f_px=900.0, width=800, height=600)
    assert read_ply(plain)[1] is None
    assert read_ply(sharp)[1] == META
    np.testing.assert_array_equal(read_ply(plain)[0].means, read_ply(sharp)[0].means)


def test_unknown_layout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ply layout"):
        write_ply(tmp_path / "x.ply", to_vertex_records(source(3)), META, layout="inria")


def test_vertex_only_ply_needs_no_camera(tmp_path: Path) -> None:
    path = tmp_path / "scene.ply"
    FORMATS["ply"].write(path, to_vertex_records(source(5)), None)
    assert read_ply_records(path)[1] is None
    with pytest.raises(ValueError, match="camera"):
        FORMATS["ply"].write(path, to_vertex_records(source(5)), None, WriteOptions(ply_layout="ml-sharp"))


def test_convert_vertex_only_to_glb_takes_the_camera_given(tmp_path: Path) -> None:
    records = to_vertex_records(source(100))
    src = tmp_path / "plain.ply"
    write_ply(src, records, META)
    direct = tmp_path / "direct.glb"
    FORMATS["glb"].write(direct, records, META)
    converted = tmp_path / "converted.glb"
    convert(src, converted, camera=META)
    assert converted.read_bytes() == direct.read_bytes()
    # Without a camera the .glb is written without one (the Gaussians are all there).
    bare = tmp_path / "bare.glb"
    convert(src, bare)
    assert b'"cameras"' not in bare.read_bytes()
    assert len(read_glb(bare)) == 100


def test_convert_to_ml_sharp_ply_without_camera_says_how(tmp_path: Path) -> None:
    src = tmp_path / "plain.ply"
    write_ply(src, to_vertex_records(source(10)), META)
    with pytest.raises(ValueError, match="--f-px"):
        convert(src, tmp_path / "out.ply", WriteOptions(ply_layout="ml-sharp"))
    convert(src, tmp_path / "out.ply", WriteOptions(ply_layout="ml-sharp"), camera=META)
    assert read_ply(tmp_path / "out.ply")[1] == META


def test_convert_carries_the_camera_of_an_ml_sharp_ply(tmp_path: Path) -> None:
    records = to_vertex_records(source(10))
    src = tmp_path / "sharp.ply"
    write_ply(src, records, META, layout="ml-sharp")
    out = tmp_path / "plain.ply"
    convert(src, out)
    assert out.read_bytes().split(b"end_header\n", 1)[1] == records.tobytes()
    back = tmp_path / "back.ply"
    convert(out, back, WriteOptions(ply_layout="ml-sharp"), camera=META)
    assert back.read_bytes() == src.read_bytes()


def _version(path: Path) -> int:
    version: int = struct.unpack_from("<I", gzip.decompress(path.read_bytes()), 4)[0]
    return version


def test_default_spz_is_version_2(tmp_path: Path) -> None:
    path = tmp_path / "scene.spz"
    write_spz(path, to_vertex_records(source(10)))
    assert _version(path) == 2
    FORMATS["spz"].write(path, to_vertex_records(source(10)), META)
    assert _version(path) == 2
    FORMATS["spz"].write(path, to_vertex_records(source(10)), META, WriteOptions(spz_version=3))
    assert _version(path) == 3


def test_spz_versions_differ_only_in_the_rotations(tmp_path: Path) -> None:
    records = to_vertex_records(source(40))
    v2, v3 = spz_payload(records, version=2), spz_payload(records, version=3)
    n = len(records)
    before_rotations = 16 + n * (9 + 1 + 3 + 3)
    assert v2[16:before_rotations] == v3[16:before_rotations]
    assert len(v2) == before_rotations + 3 * n
    assert len(v3) == before_rotations + 4 * n


def test_spz_v2_rotation_bytes_by_hand() -> None:
    records = np.zeros(2, dtype=to_vertex_records(source(1)).dtype)
    records["rot_0"] = (1.0, -0.5)  # w
    records["rot_1"] = (0.0, 0.5)  # x
    records["rot_2"] = (0.0, -0.5)
    records["rot_3"] = (0.0, 0.5)
    body = spz_payload(records, version=2)[16 + 2 * 16 :]
    # identity: x, y, z = 0 -> 127.5 rounds away from zero to 128
    assert body[0:3] == bytes([128, 128, 128])
    # w < 0: the quaternion is negated first, so x, y, z = -0.5, 0.5, -0.5 -> 63.75, 191.25, 63.75
    assert body[3:6] == bytes([64, 191, 64])


def test_unknown_spz_version_is_refused() -> None:
    with pytest.raises(ValueError, match="SPZ version"):
        spz_payload(to_vertex_records(source(3)), version=4)


@pytest.mark.parametrize("version", [2, 3])
def test_spz_round_trip_within_the_version_tolerance(version: int, tmp_path: Path) -> None:
    from tests.formats.test_contract import matching_rows

    g = source()
    path = tmp_path / "scene.spz"
    fmt = FORMATS["spz"]
    fmt.write(path, to_vertex_records(g), META, WriteOptions(spz_version=version))
    back = read_spz(path)
    a = matching_rows(g, back)
    tol = fmt.tolerance_for(WriteOptions(spz_version=version))
    np.testing.assert_allclose(back.means, g.means[a], rtol=0, atol=tol.means)
    np.testing.assert_allclose(back.scales, g.scales[a], rtol=tol.scales, atol=0)
    np.testing.assert_allclose(back.colors, g.colors[a], rtol=0, atol=tol.colors)
    np.testing.assert_allclose(back.opacities, g.opacities[a], rtol=0, atol=tol.opacities)
    q_back, q_src = back.quaternions, g.quaternions[a]
    sign = np.where(np.einsum("ij,ij->i", q_back, q_src) < 0, -1.0, 1.0).astype(np.float32)
    np.testing.assert_allclose(q_back * sign[:, None], q_src, rtol=0, atol=tol.quaternions)
