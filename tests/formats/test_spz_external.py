"""Our ``.spz`` against an independent implementation: PlayCanvas's splat-transform.

splat-transform packs and unpacks SPZ with Niantic's own C++ library compiled to WebAssembly,
so it is the reference implementation run from outside our code. The tests check that

* it decodes our files to the source Gaussians within SPZ's precision, and
* when it packs the same ``.ply`` as SPZ version 3, the uncompressed content is byte for
  byte what :func:`~sharpmld.formats.spz.spz_payload` makes (only gzip's own bytes differ).

Nothing is downloaded here. Point ``SHARPMLD_SPLAT_TRANSFORM`` at an installed copy, either
the CLI itself or a folder holding ``node_modules/.bin/splat-transform``, e.g. after
``npm install --prefix /tmp/st @playcanvas/splat-transform@3``::

    SHARPMLD_SPLAT_TRANSFORM=/tmp/st .venv/bin/pytest tests/formats/test_spz_external.py

Axes: splat-transform 3.x, like Niantic's ``ply_to_spz``, stores the ``.ply``'s axes as they
are, which is what we write. 2.x assumed SPZ holds RUB and turned RDF data 180° about x (y and
z negated) on the way in and out; with 2.x the tests expect exactly that turn.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from plyfile import PlyData

from sharpmld.formats.gaussians import Gaussians
from sharpmld.formats.ply import (
    VERTEX_DTYPE,
    VERTEX_PROPERTIES,
    from_vertex_records,
    to_vertex_records,
    write_ply,
)
from sharpmld.formats.registry import FORMATS
from sharpmld.formats.spz import read_spz, spz_payload, write_spz
from tests.formats.test_contract import META, source

ENV_VAR = "SHARPMLD_SPLAT_TRANSFORM"
# Read at import: tests/conftest.py removes every SHARPMLD_* variable around each test.
CONFIGURED = os.environ.get(ENV_VAR)
TIMEOUT = 300


@dataclass(frozen=True)
class SplatTransform:
    node: str
    cli: Path
    version: tuple[int, int, int]

    def run(self, *args: str | Path) -> str:
        done = subprocess.run(
            [self.node, str(self.cli), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        if done.returncode:
            raise AssertionError(f"splat-transform {args} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    @property
    def rub_on_disk(self) -> bool:
        """Whether this version turns .ply axes to RUB when it packs and back when it unpacks."""
        return self.version < (3, 0, 0)


def find_splat_transform() -> SplatTransform | str:
    """The installed CLI named by the environment, or the reason there is none."""
    where = CONFIGURED
    if not where:
        return f"{ENV_VAR} is not set (path to an installed @playcanvas/splat-transform)"
    node = shutil.which("node")
    if node is None:
        return "node is not on PATH"
    cli = Path(where)
    if cli.is_dir():
        cli = cli / "node_modules" / ".bin" / "splat-transform"
    if not cli.is_file():
        return f"{ENV_VAR}={where}: no splat-transform CLI there"
    cli = cli.resolve()
    done = subprocess.run([node, str(cli), "--version"], capture_output=True, text=True, timeout=60)
    match = re.search(r"v(\d+)\.(\d+)\.(\d+)", done.stdout + done.stderr)
    if done.returncode or not match:
        return f"{cli} --version failed: {done.stdout}{done.stderr}"
    major, minor, patch = (int(v) for v in match.groups())
    return SplatTransform(node, cli, (major, minor, patch))


@pytest.fixture(scope="module")
def splat_transform() -> SplatTransform:
    found = find_splat_transform()
    if isinstance(found, str):
        pytest.skip(found)
    return found


def turned_about_x(records: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    """RDF <-> RUB: y and z negated, and the quaternion's y and z (exact in float32)."""
    out = records.copy()
    for name in ("y", "z", "rot_2", "rot_3"):
        out[name] = -out[name]
    return out


def ply_records(path: Path) -> npt.NDArray[np.void]:
    """The 3DGS fields of any .ply (splat-transform orders its columns its own way)."""
    vertex = PlyData.read(str(path))["vertex"].data
    records = np.empty(len(vertex), dtype=VERTEX_DTYPE)
    for name in VERTEX_PROPERTIES:
        records[name] = vertex[name]
    return records


def max_errors(back: Gaussians, g: Gaussians) -> dict[str, float]:
    """Largest differences, row by row (SPZ keeps the order), quaternions up to sign."""
    sign = np.where(np.einsum("ij,ij->i", back.quaternions, g.quaternions) < 0, -1.0, 1.0)
    return {
        "means": float(np.abs(back.means - g.means).max()),
        "scales": float(np.abs(back.scales / g.scales - 1).max()),
        "colors": float(np.abs(back.colors - g.colors).max()),
        "opacities": float(np.abs(back.opacities - g.opacities).max()),
        "quaternions": float(np.abs(back.quaternions * sign[:, None] - g.quaternions).max()),
    }


@pytest.mark.parametrize("version", [2, 3])
def test_splat_transform_decodes_our_spz(
    splat_transform: SplatTransform, tmp_path: Path, version: int
) -> None:
    g = source(5000, seed=11)
    ours = tmp_path / "ours.spz"
    write_spz(ours, to_vertex_records(g), version=version)
    decoded = tmp_path / "decoded.ply"
    splat_transform.run("-w", ours, decoded)
    records = ply_records(decoded)
    if splat_transform.rub_on_disk:
        records = turned_about_x(records)
    back = from_vertex_records(records)
    assert len(back) == len(g)
    errors = max_errors(back, g)
    tolerance = FORMATS["spz"].tolerance
    print(f"splat-transform {splat_transform.version} decoding our SPZ v{version}, max errors: {errors}")
    for name, error in errors.items():
        # splat-transform hands back logit opacity, which we turn back with a float32 sigmoid.
        slack = 1e-6 if name == "opacities" else 0.0
        assert error <= getattr(tolerance, name) + slack, (name, error)
    # And it is the same as what our own reader makes of the file, to float32 rounding.
    own = read_spz(ours)
    np.testing.assert_array_equal(back.means, own.means)
    np.testing.assert_allclose(back.scales, own.scales, rtol=1e-6)
    np.testing.assert_allclose(back.colors, own.colors, atol=1e-5)


@pytest.mark.parametrize("version", [2, 3])
def test_splat_transform_packs_the_same_bytes(
    splat_transform: SplatTransform, tmp_path: Path, version: int
) -> None:
    if version < 3:
        pytest.skip("splat-transform writes SPZ 3 and 4 only: version 2 is checked by its decoder")
    records = to_vertex_records(source(5000, seed=12))
    src = tmp_path / "scene.ply"
    write_ply(src, records, META)
    theirs = tmp_path / "theirs.spz"
    splat_transform.run("-w", src, "--spz-version", str(version), theirs)
    expected = turned_about_x(records) if splat_transform.rub_on_disk else records
    assert gzip.decompress(theirs.read_bytes()) == spz_payload(expected, version=version)


@pytest.mark.parametrize("version", [2, 3])
def test_edge_values_pack_the_same_bytes(
    splat_transform: SplatTransform, tmp_path: Path, version: int
) -> None:
    if version < 3:
        pytest.skip("splat-transform writes SPZ 3 and 4 only: version 2 is checked by its decoder")
    """Clamped bytes, exact halves, tied and unnormalised quaternions, far positions."""
    rng = np.random.default_rng(13)
    n = 4000
    records = np.zeros(n, dtype=VERTEX_DTYPE)
    for name in ("x", "y", "z"):
        records[name] = rng.uniform(-2047, 2047, n)
    records["x"][:64] = (np.arange(64) - 32 + 0.5) / 4096  # exactly half a step
    for name in ("f_dc_0", "f_dc_1", "f_dc_2"):
        records[name] = rng.uniform(-6, 6, n)
    records["opacity"] = rng.uniform(-20, 20, n)
    for name in ("scale_0", "scale_1", "scale_2"):
        records[name] = rng.uniform(-14, 9, n)
    q = rng.standard_normal((n, 4)) * rng.uniform(0.01, 10, (n, 1))
    q[:200] = np.round(q[:200])
    q[:200][~q[:200].any(axis=1)] = (1, 0, 0, 0)
    for i, name in enumerate(("rot_0", "rot_1", "rot_2", "rot_3")):
        records[name] = q[:, i]
    src = tmp_path / "edges.ply"
    write_ply(src, records, META)
    theirs = tmp_path / "theirs.spz"
    splat_transform.run("-w", src, "--spz-version", str(version), theirs)
    expected = turned_about_x(records) if splat_transform.rub_on_disk else records
    assert gzip.decompress(theirs.read_bytes()) == spz_payload(expected, version=version)


def test_version_4_is_refused_by_name(splat_transform: SplatTransform, tmp_path: Path) -> None:
    src = tmp_path / "scene.ply"
    write_ply(src, to_vertex_records(source(100)), META)
    v4 = tmp_path / "v4.spz"
    splat_transform.run("-w", src, "--spz-version", "4", v4)
    with pytest.raises(ValueError, match="version 4"):
        read_spz(v4)


# Checks of the layout itself, by hand-computed bytes; these need no external tool.


def test_layout_of_a_hand_computed_gaussian() -> None:
    records = np.zeros(2, dtype=VERTEX_DTYPE)
    records[0] = (1.0, -1.0, 0.5, 0.0, 1.0, -1.0, 0.0, -10.0, 0.0, 10.0, 1.0, 0.0, 0.0, 0.0)
    # A quaternion whose largest component (y) is negative: stored negated, y's index in the
    # top bits, then x, z, w as sign + 9-bit magnitudes, x highest.
    records[1] = (0.0,) * 10 + (0.5, 0.1, -0.8, 0.3)
    data = spz_payload(records, version=3)
    assert data[:16] == bytes.fromhex("4e4753500300000002000000000c0000")
    body = data[16:]
    # one block per attribute for both rows: positions 18, alphas 2, colours 6, scales 6, rotations 8
    assert len(body) == 2 * (9 + 1 + 3 + 3 + 4)
    # positions: 4096, -4096, 2048 as 24-bit little-endian two's complement
    assert body[0:9] == bytes.fromhex("00100000f0ff000800")
    assert body[9:18] == bytes(9)
    assert body[18:20] == bytes([128, 128])  # sigmoid(0) * 255 = 127.5 rounds away from zero
    # f_dc 0, 1, -1 -> 127.5 + 38.25 * f_dc -> 128, 166 (165.75), 89 (89.25)
    assert body[20:23] == bytes([128, 166, 89])
    # log scales -10, 0, 10 -> (s + 10) * 16 -> 0, 160, 320 clamped to 255
    assert body[26:29] == bytes([0, 160, 255])
    q = np.array([0.1, -0.8, 0.3, 0.5]) / np.linalg.norm([0.5, 0.1, -0.8, 0.3])  # x y z w
    q = -q  # largest (y) made positive
    fields = [
        (int(v < 0) << 9) | int(np.float32(511) * np.float32(abs(v) / 0.7071067811865476) + 0.5)
        for v in (q[0], q[2], q[3])
    ]
    comp = (1 << 30) | (fields[0] << 20) | (fields[1] << 10) | fields[2]
    assert body[32:36] == (3 << 30).to_bytes(4, "little")  # identity: w largest, the rest 0
    assert body[36:40] == comp.to_bytes(4, "little")


def test_files_are_deterministic_gzip(tmp_path: Path) -> None:
    records = to_vertex_records(source(300))
    a, b = tmp_path / "a.spz", tmp_path / "b.spz"
    write_spz(a, records)
    write_spz(b, records)
    raw = a.read_bytes()
    assert raw == b.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == bytes(4)  # gzip, mtime 0
    assert gzip.decompress(raw) == spz_payload(records)


def test_garbage_is_a_value_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.spz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="not a gzip"):
        read_spz(bad)
    bad.write_bytes(gzip.compress(b"XXXX" + bytes(12)))
    with pytest.raises(ValueError, match="magic"):
        read_spz(bad)
    short = spz_payload(to_vertex_records(source(10)))[:-5]
    bad.write_bytes(gzip.compress(short))
    with pytest.raises(ValueError, match="needed for 10 Gaussians"):
        read_spz(bad)
