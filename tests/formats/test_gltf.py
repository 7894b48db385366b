"""The ``.glb`` writer: GLB container rules, glTF 2.0 accessor rules, KHR_gaussian_splatting.

The structural checks here are our own restatement of the glTF 2.0 specification (GLB
container, accessors and buffer views) and of the extension's README; they always run.
Two further checks use independent tools when an installed copy is named (nothing is
downloaded during the run):

* ``SHARPMLD_GLTF_VALIDATOR``: Khronos' glTF-Validator (npm ``gltf-validator``), either its
  package folder or a folder holding ``node_modules/gltf-validator``;
* ``SHARPMLD_SPLAT_TRANSFORM``: PlayCanvas splat-transform (see test_spz_external.py), whose
  own KHR_gaussian_splatting ``.glb`` of the same ``.ply`` must describe the same Gaussians.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from sharpmld.formats.gaussians import Gaussians, SceneMeta
from sharpmld.formats.gltf import (
    EXTENSION,
    parse_glb,
    read_accessor,
    read_glb,
    write_glb,
)
from sharpmld.formats.ply import SH_C0, VERTEX_DTYPE, srgb_to_linear, to_vertex_records, write_ply
from tests.formats.test_contract import META, source
from tests.formats.test_spz_external import find_splat_transform

COMPONENT_SIZES = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
FLOAT, UNSIGNED_BYTE, UNSIGNED_SHORT = 5126, 5121, 5123
# (accessor type, allowed (componentType, normalized) pairs) per attribute, from the glTF 2.0
# spec (POSITION, COLOR_0) and the extension's attribute table.
SEMANTICS: dict[str, tuple[str, set[tuple[int, bool]]]] = {
    "POSITION": ("VEC3", {(FLOAT, False)}),
    "COLOR_0": ("VEC4", {(FLOAT, False), (UNSIGNED_BYTE, True), (UNSIGNED_SHORT, True)}),
    f"{EXTENSION}:ROTATION": ("VEC4", {(FLOAT, False), (5120, True), (5122, True)}),
    f"{EXTENSION}:SCALE": (
        "VEC3",
        {
            (FLOAT, False),
            (UNSIGNED_BYTE, False),
            (UNSIGNED_BYTE, True),
            (UNSIGNED_SHORT, False),
            (UNSIGNED_SHORT, True),
        },
    ),
    f"{EXTENSION}:OPACITY": ("SCALAR", {(FLOAT, False), (UNSIGNED_BYTE, True), (UNSIGNED_SHORT, True)}),
    f"{EXTENSION}:SH_DEGREE_0_COEF_0": ("VEC3", {(FLOAT, False)}),
}
REQUIRED = set(SEMANTICS) - {"COLOR_0"}
EXTENSION_KEYS = {"kernel", "colorSpace", "projection", "sortingMethod", "extensions", "extras"}
COLOR_SPACES = {"srgb_rec709_display", "lin_rec709_display"}


def write(tmp_path: Path, g: Gaussians, meta: SceneMeta | None = META, name: str = "s.glb") -> Path:
    path = tmp_path / name
    write_glb(path, to_vertex_records(g), meta)
    return path


def check_glb(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Assert the GLB container rules; the JSON document and the BIN chunk's bytes."""
    magic, version, length = struct.unpack_from("<III", data, 0)
    assert (magic, version, length) == (0x46546C67, 2, len(data))
    json_length, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A and json_length % 4 == 0
    json_bytes = data[20 : 20 + json_length]
    text = json_bytes.rstrip(b" ")
    assert len(json_bytes) - len(text) < 4, "JSON padding is more than 3 spaces"
    doc = json.loads(text.decode("utf-8"))
    offset = 20 + json_length
    bin_length, bin_type = struct.unpack_from("<II", data, offset)
    assert bin_type == 0x004E4942 and bin_length % 4 == 0
    binary = data[offset + 8 : offset + 8 + bin_length]
    assert offset + 8 + bin_length == len(data), "bytes after the BIN chunk"
    buffer_length = doc["buffers"][0]["byteLength"]
    assert "uri" not in doc["buffers"][0] and len(doc["buffers"]) == 1
    assert bin_length == (buffer_length + 3) & ~3
    assert binary[buffer_length:] == bytes(bin_length - buffer_length), "BIN padding is not zeros"
    return doc, binary


def check_document(doc: dict[str, Any], binary: bytes) -> dict[str, npt.NDArray[Any]]:
    """Assert the glTF JSON rules we rely on; the splat attributes' data by semantic."""
    assert doc["asset"]["version"] == "2.0"
    assert doc["asset"]["generator"] == "sharpmld"
    assert doc["extensionsUsed"] == [EXTENSION]
    assert EXTENSION not in doc.get("extensionsRequired", [])
    assert 0 <= doc["scene"] < len(doc["scenes"])
    for scene in doc["scenes"]:
        assert all(0 <= n < len(doc["nodes"]) for n in scene["nodes"])
    for node in doc["nodes"]:
        if "mesh" in node:
            assert 0 <= node["mesh"] < len(doc["meshes"])
        if "camera" in node:
            assert 0 <= node["camera"] < len(doc["cameras"])
        if "rotation" in node:
            assert math.isclose(math.hypot(*node["rotation"]), 1.0, abs_tol=1e-9)
    # Buffer views: in the buffer, 4-byte aligned (vertex data), disjoint, vertex targets.
    buffer_length = doc["buffers"][0]["byteLength"]
    spans = []
    for view in doc["bufferViews"]:
        assert view["buffer"] == 0
        start, size = view.get("byteOffset", 0), view["byteLength"]
        assert start % 4 == 0 and size > 0 and start + size <= buffer_length <= len(binary)
        assert view.get("target") == 34962
        assert "byteStride" not in view or view["byteStride"] % 4 == 0
        spans.append((start, start + size))
    spans.sort()
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), "views overlap"
    # Accessors: view exists, aligned to the component size, inside the view.
    for accessor in doc["accessors"]:
        view = doc["bufferViews"][accessor["bufferView"]]
        component = COMPONENT_SIZES[accessor["componentType"]]
        element = component * TYPE_SIZES[accessor["type"]]
        offset = accessor.get("byteOffset", 0)
        assert offset % component == 0 and (view.get("byteOffset", 0) + offset) % component == 0
        stride = view.get("byteStride", element)
        assert offset + stride * (accessor["count"] - 1) + element <= view["byteLength"]
        assert element % 4 == 0, "vertex attribute elements must be 4-byte aligned"
    (mesh,) = doc["meshes"]
    (primitive,) = mesh["primitives"]
    assert primitive["mode"] == 0
    assert "indices" not in primitive
    ext = primitive["extensions"][EXTENSION]
    assert set(ext) <= EXTENSION_KEYS
    assert ext["kernel"] == "ellipse"
    assert ext["colorSpace"] in COLOR_SPACES
    attributes = primitive["attributes"]
    assert REQUIRED <= set(attributes) <= set(SEMANTICS)
    counts = {doc["accessors"][i]["count"] for i in attributes.values()}
    assert len(counts) == 1
    data: dict[str, npt.NDArray[Any]] = {}
    for semantic, index in attributes.items():
        accessor = doc["accessors"][index]
        kind, allowed = SEMANTICS[semantic]
        assert accessor["type"] == kind, semantic
        assert (accessor["componentType"], accessor.get("normalized", False)) in allowed, semantic
        data[semantic] = read_accessor(doc, memoryview(binary), index)
    position = doc["accessors"][attributes["POSITION"]]
    values = data["POSITION"]
    assert np.array_equal(np.float32(position["min"]), values.min(axis=0))
    assert np.array_equal(np.float32(position["max"]), values.max(axis=0))
    return data


def test_container_document_and_data(tmp_path: Path) -> None:
    g = source(1001, seed=21)  # odd count: the byte-sized COLOR_0 view still ends aligned
    data, binary = check_glb(write(tmp_path, g).read_bytes())
    attributes = check_document(data, binary)
    # Content, per the extension: axes turned to glTF's (x, y negated), unit xyzw rotation,
    # linear scale, opacity in [0, 1], the DC coefficient verbatim, linear COLOR_0 fallback.
    records = to_vertex_records(g)
    flip = np.array([-1, -1, 1], dtype=np.float32)
    np.testing.assert_array_equal(attributes["POSITION"], g.means * flip)
    rotation = attributes[f"{EXTENSION}:ROTATION"]
    np.testing.assert_allclose(np.linalg.norm(rotation, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(rotation[:, 3], g.quaternions[:, 0], atol=1e-6)
    np.testing.assert_allclose(rotation[:, 0:3], g.quaternions[:, 1:4] * flip, atol=1e-6)
    np.testing.assert_allclose(attributes[f"{EXTENSION}:SCALE"], g.scales, rtol=1e-6)
    opacity = attributes[f"{EXTENSION}:OPACITY"][:, 0]
    assert ((opacity >= 0) & (opacity <= 1)).all()
    np.testing.assert_allclose(opacity, g.opacities, atol=1e-6)
    sh = attributes[f"{EXTENSION}:SH_DEGREE_0_COEF_0"]
    dc = np.stack([records[f"f_dc_{i}"] for i in range(3)], axis=1)
    np.testing.assert_array_equal(sh, dc)
    color = attributes["COLOR_0"].astype(np.float64) / 255
    linear = srgb_to_linear(np.clip(0.5 + SH_C0 * sh, 0, 1))
    np.testing.assert_allclose(color[:, 0:3], linear, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(color[:, 3], g.opacities, atol=0.5 / 255 + 1e-6)


def test_camera_matches_the_photo(tmp_path: Path) -> None:
    doc, _ = check_glb(write(tmp_path, source(10)).read_bytes())
    (camera,) = doc["cameras"]
    assert camera["type"] == "perspective"
    p = camera["perspective"]
    assert math.isclose(p["yfov"], 2 * math.atan(META.height / 2 / META.f_px))
    assert math.isclose(p["aspectRatio"], META.width / META.height)
    assert p["znear"] > 0
    node = next(n for n in doc["nodes"] if "camera" in n)
    assert node["rotation"] == [0.0, 1.0, 0.0, 0.0]  # looks down +Z, the photo's direction
    assert doc["scenes"][0]["extras"]["sharpmld"] == {"f_px": 900.0, "width": 800, "height": 600}
    bare, binary = check_glb(write(tmp_path, source(10), None, "bare.glb").read_bytes())
    check_document(bare, binary)
    assert "cameras" not in bare and len(bare["nodes"]) == 1


def test_empty_scene_is_a_valid_file_without_a_mesh(tmp_path: Path) -> None:
    path = tmp_path / "empty.glb"
    write_glb(path, np.empty(0, dtype=VERTEX_DTYPE), META)
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<III", data, 0)
    assert (magic, version, length) == (0x46546C67, 2, len(data))
    json_length, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A and 20 + json_length == len(data)  # no BIN chunk
    doc = json.loads(data[20:])
    assert "meshes" not in doc and "accessors" not in doc and "buffers" not in doc
    assert doc["scenes"][0]["nodes"] == [0] and "camera" in doc["nodes"][0]
    assert len(read_glb(path)) == 0


def test_degenerate_quaternions_become_identity_and_bad_positions_are_refused(tmp_path: Path) -> None:
    records = to_vertex_records(source(4))
    for name in ("rot_0", "rot_1", "rot_2", "rot_3"):
        records[name][0] = 0.0
    records["rot_0"][1] = np.nan
    path = tmp_path / "d.glb"
    write_glb(path, records, None)
    q = read_glb(path).quaternions
    np.testing.assert_array_equal(q[:2], [[1, 0, 0, 0], [1, 0, 0, 0]])
    records["x"][2] = np.inf
    with pytest.raises(ValueError, match="finite"):
        write_glb(tmp_path / "e.glb", records, None)
    assert not (tmp_path / "e.glb").exists()


def test_reader_refuses_what_is_not_a_splat_glb(tmp_path: Path) -> None:
    bad = tmp_path / "bad.glb"
    bad.write_bytes(b"glTF" + bytes(30))
    with pytest.raises(ValueError, match=r"glTF 2 binary|bytes"):
        read_glb(bad)
    good = write(tmp_path, source(5)).read_bytes()
    doc, binary = parse_glb(good)
    del doc["meshes"][0]["primitives"][0]["extensions"]
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<II", len(text), 0x4E4F534A) + text
    body += struct.pack("<II", len(binary), 0x004E4942) + bytes(binary)
    bad.write_bytes(struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body)
    with pytest.raises(ValueError, match="no KHR_gaussian_splatting primitive"):
        read_glb(bad)


# Khronos' glTF-Validator, from an installed copy.

VALIDATOR_ENV = "SHARPMLD_GLTF_VALIDATOR"
# Read at import: tests/conftest.py removes every SHARPMLD_* variable around each test.
VALIDATOR = os.environ.get(VALIDATOR_ENV)
VALIDATE_JS = """
const validator = require(process.argv[2]);
const fs = require('fs');
const data = new Uint8Array(fs.readFileSync(process.argv[3]));
validator.validateBytes(data, {maxIssues: 1000}).then(
    (report) => console.log(JSON.stringify(report)),
    (error) => { console.error(String(error)); process.exit(1); });
"""


def is_validator(folder: Path) -> bool:
    try:
        return bool(json.loads((folder / "package.json").read_text())["name"] == "gltf-validator")
    except (OSError, ValueError, KeyError):
        return False


@pytest.fixture(scope="module")
def validate(tmp_path_factory: pytest.TempPathFactory) -> Any:
    where = VALIDATOR
    if not where:
        pytest.skip(f"{VALIDATOR_ENV} is not set (path to an installed npm gltf-validator)")
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH")
    package = next(
        (p for p in (Path(where), Path(where) / "node_modules" / "gltf-validator") if is_validator(p)),
        None,
    )
    if package is None:
        pytest.skip(f"{VALIDATOR_ENV}={where}: no gltf-validator package there")
    script = tmp_path_factory.mktemp("validator") / "validate.cjs"
    script.write_text(VALIDATE_JS)

    def run(path: Path) -> dict[str, Any]:
        done = subprocess.run(
            [node, str(script), str(package.resolve()), str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        report: dict[str, Any] = json.loads(done.stdout)
        return report

    return run


def unexplained(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The validator's messages other than its known gap for this extension.

    Released validators (2.0.0-dev.3.10 is the newest on npm) do not implement
    KHR_gaussian_splatting: they note it as UNSUPPORTED_EXTENSION (info) and, because core
    glTF only allows underscore-prefixed custom semantics, report every extension-prefixed
    attribute as MESH_PRIMITIVE_INVALID_ATTRIBUTE, although the extension defines them
    (KhronosGroup/glTF-Validator issue #252; the core spec change is glTF PR #2514).
    """
    out = []
    for message in report["issues"]["messages"]:
        code, pointer = message["code"], message.get("pointer", "")
        if code == "UNSUPPORTED_EXTENSION" and pointer == "/extensionsUsed/0":
            continue
        if code == "MESH_PRIMITIVE_INVALID_ATTRIBUTE" and pointer.startswith(
            f"/meshes/0/primitives/0/attributes/{EXTENSION}:"
        ):
            continue
        out.append(message)
    return out


def test_khronos_validator_finds_nothing_else(validate: Any, tmp_path: Path) -> None:
    for meta, name in ((META, "camera.glb"), (None, "bare.glb")):
        report = validate(write(tmp_path, source(2001, seed=22), meta, name))
        print(name, report["validatorVersion"], json.dumps(report["issues"]))
        assert unexplained(report) == []
        assert report["issues"]["numWarnings"] == 0
        assert report["info"]["totalVertexCount"] == 2001
        assert report["info"]["drawCallCount"] == 1
    empty = tmp_path / "empty.glb"
    write_glb(empty, np.empty(0, dtype=VERTEX_DTYPE), META)
    report = validate(empty)
    print("empty.glb", json.dumps(report["issues"]))
    assert report["issues"]["messages"] == []


def test_khronos_validator_does_check_our_data(validate: Any, tmp_path: Path) -> None:
    """A control: spoiling POSITION's max must be caught, so a clean report means something."""
    path = write(tmp_path, source(50))
    data = bytearray(path.read_bytes())
    doc, _ = parse_glb(bytes(data))
    old = json.dumps(doc["accessors"][0]["max"][0]).encode()
    at = data.index(b'"max":[' + old)
    data[at + 7 : at + 7 + len(old)] = b"9" * len(old)
    path.write_bytes(bytes(data))
    codes = {m["code"] for m in unexplained(validate(path))}
    assert "ACCESSOR_MAX_MISMATCH" in codes


# PlayCanvas splat-transform's own KHR_gaussian_splatting writer, as a second opinion.


def covariances(q_wxyz: npt.NDArray[Any], scales: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    w, x, y, z = np.asarray(q_wxyz, dtype=np.float64).T
    r = np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )
    m = r * np.asarray(scales, dtype=np.float64)[:, None, :]
    out: npt.NDArray[np.float64] = m @ m.transpose(0, 2, 1)
    return out


def test_splat_transform_writes_the_same_gaussians(tmp_path: Path) -> None:
    tool = find_splat_transform()
    if isinstance(tool, str):
        pytest.skip(tool)
    g = source(3000, seed=23)
    src = tmp_path / "scene.ply"
    write_ply(src, to_vertex_records(g), META)
    theirs = tmp_path / "theirs.glb"
    tool.run("-w", src, theirs)
    ours = tmp_path / "ours.glb"
    write_glb(ours, to_vertex_records(g), META)
    a, b = read_glb(theirs), read_glb(ours)
    # Same axes (both turn the .ply 180° about Z), the same data to float32 rounding ...
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_allclose(a.scales, b.scales, rtol=1e-6)
    np.testing.assert_allclose(a.colors, b.colors, atol=1e-6)
    np.testing.assert_allclose(a.opacities, b.opacities, atol=1e-6)
    # ... and the same ellipsoids: splat-transform turns each quaternion by left-multiplying
    # the 180° turn, we conjugate it; the two differ, the covariances they give do not.
    ca, cb = covariances(a.quaternions, a.scales), covariances(b.quaternions, b.scales)
    scale = np.abs(cb).max(axis=(1, 2))
    assert (np.abs(ca - cb).max(axis=(1, 2)) / scale).max() < 1e-5
