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


def matching_rows(src: Gaussians, back: Gaussians) -> npt.NDArray[np.intp]:
    """For each row of ``back``, the row of ``src`` nearest in position.

    Formats may reorder rows (.splat sorts them) and quantise positions (.spz), so neither the
    order nor a sort by position pairs rows up reliably. The source's means are far apart
    compared with any format's position error, so the nearest source row is the right one;
    the pairing must come out one-to-one.
    """
    a = src.means.astype(np.float64)
    out = np.empty(len(back), dtype=np.intp)
    for start in range(0, len(back), 512):
        b = back.means[start : start + 512].astype(np.float64)
        d = (b * b).sum(1)[:, None] - 2 * b @ a.T + (a * a).sum(1)[None, :]
        out[start : start + 512] = np.argmin(d, axis=1)
    assert len(np.unique(out)) == len(back), "rows did not pair up one-to-one by position"
    return out


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=list(FORMATS))
def test_round_trip_within_declared_tolerance(fmt: OutputFormat, tmp_path: Path) -> None:
    g = source()
    path = tmp_path / f"scene{fmt.suffix}"
    fmt.write(path, to_vertex_records(g), META)
    back = fmt.read(path)
    assert len(back) == len(g)
    a = matching_rows(g, back)
    tol = fmt.tolerance
    np.testing.assert_allclose(back.means, g.means[a], rtol=0, atol=tol.means)
    np.testing.assert_allclose(back.scales, g.scales[a], rtol=tol.scales, atol=0)
    np.testing.assert_allclose(back.colors, g.colors[a], rtol=0, atol=tol.colors)
    np.testing.assert_allclose(back.opacities, g.opacities[a], rtol=0, atol=tol.opacities)
    # q and -q are the same rotation; formats may store either (SPZ makes the largest
    # component positive), so each row is compared with the sign that matches the source.
    q_back, q_src = back.quaternions, g.quaternions[a]
    sign = np.where(np.einsum("ij,ij->i", q_back, q_src) < 0, -1.0, 1.0).astype(np.float32)
    np.testing.assert_allclose(q_back * sign[:, None], q_src, rtol=0, atol=tol.quaternions)


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=list(FORMATS))
def test_convert_equals_direct_write(fmt: OutputFormat, tmp_path: Path) -> None:
    records = to_vertex_records(source(500))
    src = tmp_path / "src.ply"
    # ml-sharp's layout, whose camera convert carries into the formats that hold one.
    write_ply(src, records, META, layout="ml-sharp")
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


def test_the_daemon_knows_every_format_the_worker_can_write() -> None:
    """jobspec keeps its own list so the daemon never imports numpy; it must not drift."""
    from sharpmld.intake.jobspec import KNOWN_FORMATS

    assert set(KNOWN_FORMATS) == set(FORMATS)
