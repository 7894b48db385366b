"""Every output format behind one small interface, chosen by file suffix.

A new format plugs in by adding one entry to :data:`FORMATS`; the worker, the
``convert`` command and the contract test pick them up from there. Each entry declares how
much a write/read round trip may change the Gaussians, which the contract test enforces.

Settings that change a format's bytes for the viewers it must open in (the ``.ply`` layout,
the SPZ version) travel as one :class:`WriteOptions`, from ``[outputs]`` to every writer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from sharpmld.formats.gaussians import Gaussians, SceneMeta
from sharpmld.formats.gltf import read_glb, write_glb
from sharpmld.formats.ply import DEFAULT_LAYOUT, read_ply, read_ply_records, write_ply
from sharpmld.formats.splat import read_splat, write_splat
from sharpmld.formats.spz import VERSION as SPZ_VERSION
from sharpmld.formats.spz import read_spz, write_spz

Records = npt.NDArray[np.void]
Reader = Callable[[Path], Gaussians]


@dataclass(frozen=True)
class WriteOptions:
    """The ``[outputs]`` settings that choose a format's variant; defaults open in most viewers."""

    ply_layout: str = DEFAULT_LAYOUT
    spz_version: int = SPZ_VERSION


DEFAULT_OPTIONS = WriteOptions()


class Writer(Protocol):
    """Writes one format from the vertex table (and the camera, where the format holds one)."""

    def __call__(
        self, path: Path, records: Records, meta: SceneMeta | None, options: WriteOptions = DEFAULT_OPTIONS
    ) -> None: ...


@dataclass(frozen=True)
class Tolerance:
    """The largest change a write -> read round trip may make, per attribute.

    ``means`` and ``colors`` (linear RGB), ``opacities`` and ``quaternions`` (per component of
    a unit quaternion, compared up to sign: q and -q are the same rotation) are absolute;
    ``scales`` is relative.
    """

    means: float
    scales: float
    colors: float
    opacities: float
    quaternions: float


@dataclass(frozen=True)
class OutputFormat:
    """One file format: how to write it from vertex records and read it back."""

    name: str
    suffix: str
    write: Writer
    read: Reader
    tolerance: Tolerance
    """The tolerance with the default options."""
    needs_meta: Callable[[WriteOptions], bool] = lambda options: False
    option: str | None = None
    """The :class:`WriteOptions` field that changes this format's bytes, if any."""
    tolerances: Mapping[Any, Tolerance] = field(default_factory=dict)
    """The tolerance for other values of ``option``, where it differs from ``tolerance``."""

    def tolerance_for(self, options: WriteOptions) -> Tolerance:
        """How much a round trip written with ``options`` may change the Gaussians."""
        if self.option is None:
            return self.tolerance
        return self.tolerances.get(getattr(options, self.option), self.tolerance)


def _write_ply(
    path: Path, records: Records, meta: SceneMeta | None, options: WriteOptions = DEFAULT_OPTIONS
) -> None:
    write_ply(path, records, meta, options.ply_layout)


def _read_ply(path: Path) -> Gaussians:
    return read_ply(path)[0]


def _write_splat(
    path: Path, records: Records, meta: SceneMeta | None, options: WriteOptions = DEFAULT_OPTIONS
) -> None:
    write_splat(path, records)


def _write_spz(
    path: Path, records: Records, meta: SceneMeta | None, options: WriteOptions = DEFAULT_OPTIONS
) -> None:
    write_spz(path, records, meta, options.spz_version)


def _write_glb(
    path: Path, records: Records, meta: SceneMeta | None, options: WriteOptions = DEFAULT_OPTIONS
) -> None:
    write_glb(path, records, meta)


# SPZ version 3's tolerance: 9-bit "smallest three" quaternions (0.0007 per stored component,
# <= 3x that for the derived one); the other attributes are stored alike in both versions.
_SPZ_V3 = Tolerance(
    means=0.5 / 4096 + 1e-6,
    scales=0.0318,
    colors=0.0085,
    opacities=0.5 / 255 + 1e-6,
    quaternions=0.0022,
)


FORMATS: dict[str, OutputFormat] = {
    "ply": OutputFormat(
        name="ply",
        suffix=".ply",
        write=_write_ply,
        read=_read_ply,
        # float32 log/exp, logit/sigmoid and the sRGB curve there and back.
        tolerance=Tolerance(means=0.0, scales=1e-5, colors=1e-5, opacities=1e-6, quaternions=0.0),
        needs_meta=lambda options: options.ply_layout == "ml-sharp",
    ),
    "splat": OutputFormat(
        name="splat",
        suffix=".splat",
        write=_write_splat,
        read=read_splat,
        # Truncation to 1/255 of sRGB (slope of the decoding curve <= 2.3 -> 0.009 linear),
        # 1/255 of opacity, 1/128 per quaternion component before renormalising (<= 0.032).
        tolerance=Tolerance(
            means=0.0, scales=1e-5, colors=0.0095, opacities=1 / 255 + 1e-6, quaternions=0.032
        ),
    ),
    "spz": OutputFormat(
        name="spz",
        suffix=".spz",
        write=_write_spz,
        read=read_spz,
        # Rounding to 1/4096 (positions, within +-2048), 1/16 of a log scale (e^(1/32) - 1
        # relative, for scales in e^-10..e^5.9), 1/255 of opacity, 1/38.25 of the DC
        # coefficient (SH_C0/76.5 of sRGB, x2.3 at most in linear). Version 2 (the default)
        # stores x, y, z to 1/255 and derives w: |xyz|^2 may gain 2 * (0.5/127.5) * sqrt(3), so
        # w = 0 may come back as sqrt(0.0136) = 0.117.
        tolerance=Tolerance(
            means=_SPZ_V3.means,
            scales=_SPZ_V3.scales,
            colors=_SPZ_V3.colors,
            opacities=_SPZ_V3.opacities,
            quaternions=0.12,
        ),
        option="spz_version",
        tolerances={3: _SPZ_V3},
    ),
    "glb": OutputFormat(
        name="glb",
        suffix=".glb",
        write=_write_glb,
        read=read_glb,
        # float32 throughout: exp/sigmoid of the .ply's logs and logits, exact sign flips for
        # the axes, the DC coefficient verbatim; quaternions are renormalised.
        tolerance=Tolerance(means=0.0, scales=1e-5, colors=1e-5, opacities=1e-6, quaternions=1e-6),
    ),
}


def supported_suffixes() -> list[str]:
    """The suffixes ``convert`` accepts, e.g. for help texts and error messages."""
    return [fmt.suffix for fmt in FORMATS.values()]


def format_for(path: Path) -> OutputFormat:
    """The format whose suffix ``path`` has (case-insensitive); ValueError if none."""
    suffix = path.suffix.lower()
    for fmt in FORMATS.values():
        if fmt.suffix == suffix:
            return fmt
    raise ValueError(
        f"unsupported output suffix {path.suffix or '(none)'!r}; supported: {', '.join(supported_suffixes())}"
    )


def convert(
    src_ply: Path, dst: Path, options: WriteOptions = DEFAULT_OPTIONS, camera: SceneMeta | None = None
) -> None:
    """Re-encode a 3DGS ``.ply`` (either layout) as the format named by ``dst``'s suffix.

    The vertex table is taken from the file untouched, so the result is byte-identical to
    writing that format straight from the scene the ``.ply`` was written from, given the
    same camera. The camera is the ``.ply``'s own (ml-sharp layout), else ``camera``; a
    vertex-only ``.ply`` carries none, so without ``camera`` a ``.glb`` gets no camera and
    an ml-sharp ``.ply`` cannot be written.
    """
    fmt = format_for(dst)
    # Formats that can hold the camera (glTF's camera) then match a direct write with it.
    records, meta = read_ply_records(src_ply)
    meta = meta or camera
    if meta is None and fmt.needs_meta(options):
        raise ValueError(
            f"{src_ply} has no camera metadata (a vertex-only .ply); give it with --f-px and "
            f"--size WIDTHxHEIGHT to write {fmt.suffix} in this layout"
        )
    fmt.write(dst, records, meta, options)
