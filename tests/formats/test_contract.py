"""Every registered format: write, read back, and stay within its declared tolerance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from sharpmld.formats.gaussians import Gaussians, SceneMeta
from sharpmld.formats.ply import to_vertex_records, write_ply
from sharpmld.formats.registry import FORMATS, OutputFormat, convert, format_for

META = SceneMeta(f_px=900.0, width=800, height=600)


def source(n: int = 3000, seed: int = 4) -> Gaussians:
    """A plausible scene: unit quaternions, in-range colours and opacities, distinct means."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n, 4))
    return Gaussians(
        means=(rng.standard_normal((n, 3)) * [2, 2, 1] + [0, 0, 4]).astype(np.float32),
        scales=(10.0 ** rng.uniform(-4, 0, (n, 3))).astype(np.float32),
        quaternions=(q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32),
        colors=rng.uniform(0, 1, (n, 3)).astype(np.float32),
        opacities=rng.uniform(0.01, 0.99, n).astype(np.float32),
    )


def by_position(g: Gaussians) -> npt.NDArray[np.intp]:
    """Row order sorted by position, so formats that reorder rows can be compared."""
    return np.lexsort(g.means.T[::-1])


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=list(FORMATS))
def test_round_trip_within_declared_tolerance(fmt: OutputFormat, tmp_path: Path) -> None:
    g = source()
    path = tmp_path / f"scene{fmt.suffix}"
    fmt.write(path, to_vertex_records(g), META)
    back = fmt.read(path)
    assert len(back) == len(g)
    a, b = by_position(g), by_position(back)
    tol = fmt.tolerance
    np.testing.assert_allclose(back.means[b], g.means[a], rtol=0, atol=tol.means)
    np.testing.assert_allclose(back.scales[b], g.scales[a], rtol=tol.scales, atol=0)
    np.testing.assert_allclose(back.colors[b], g.colors[a], rtol=0, atol=tol.colors)
    np.testing.assert_allclose(back.opacities[b], g.opacities[a], rtol=0, atol=tol.opacities)
    np.testing.assert_allclose(back.quaternions[b], g.quaternions[a], rtol=0, atol=tol.quaternions)


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=list(FORMATS))
def test_convert_equals_direct_write(fmt: OutputFormat, tmp_path: Path) -> None:
    records = to_vertex_records(source(500))
    src = tmp_path / "src.ply"
    write_ply(src, records, META)
    direct = tmp_path / f"direct{fmt.suffix}"
    fmt.write(direct, records, META)
    converted = tmp_path / f"converted{fmt.suffix.upper()}"
    convert(src, converted)
    assert converted.read_bytes() == direct.read_bytes()


def test_every_entry_is_keyed_by_its_name() -> None:
    for key, fmt in FORMATS.items():
        assert key == fmt.name
        assert fmt.suffix.startswith(".")
        assert format_for(Path(f"a{fmt.suffix}")) is fmt


def test_unknown_suffix_names_the_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unsupported output suffix '\.obj'") as err:
        convert(tmp_path / "src.ply", tmp_path / "out.obj")
    for fmt in FORMATS.values():
        assert fmt.suffix in str(err.value)
    with pytest.raises(ValueError, match="supported"):
        format_for(Path("no_suffix"))
