"""Every output format behind one small interface, chosen by file suffix.

A new format plugs in by adding one entry to :data:`FORMATS`; the worker, the
``convert`` command and the contract test pick them up from there. Each entry declares how
much a write/read round trip may change the Gaussians, which the contract test enforces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sharpmld.formats.gaussians import Gaussians, SceneMeta
from sharpmld.formats.gltf import read_glb, write_glb
from sharpmld.formats.ply import read_ply, read_ply_records, write_ply
from sharpmld.formats.splat import read_splat, write_splat
from sharpmld.formats.spz import read_spz, write_spz

Records = npt.NDArray[np.void]
Writer = Callable[[Path, Records, SceneMeta | None], None]
Reader = Callable[[Path], Gaussians]


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
    needs_meta: bool = False


def _write_ply(path: Path, records: Records, meta: SceneMeta | None) -> None:
    if meta is None:
        raise ValueError("a .ply needs the camera metadata (f_px, image size)")
    write_ply(path, records, meta)


def _read_ply(path: Path) -> Gaussians:
    return read_ply(path)[0]


def _write_splat(path: Path, records: Records, meta: SceneMeta | None) -> None:
    write_splat(path, records)


def _write_glb(path: Path, records: Records, meta: SceneMeta | None) -> None:
    write_glb(path, records, meta)


FORMATS: dict[str, OutputFormat] = {
    "ply": OutputFormat(
        name="ply",
        suffix=".ply",
        write=_write_ply,
        read=_read_ply,
        # float32 log/exp, logit/sigmoid and the sRGB curve there and back.
        tolerance=Tolerance(means=0.0, scales=1e-5, colors=1e-5, opacities=1e-6, quaternions=0.0),
        needs_meta=True,
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
        write=write_spz,
        read=read_spz,
        # Rounding to 1/4096 (positions, within +-2048), 1/16 of a log scale (e^(1/32) - 1
        # relative, for scales in e^-10..e^5.9), 1/255 of opacity, 1/38.25 of the DC
        # coefficient (SH_C0/76.5 of sRGB, x2.3 at most in linear), and 9-bit "smallest three"
        # quaternions (0.0007 per stored component, <= 3x that for the derived one).
        tolerance=Tolerance(
            means=0.5 / 4096 + 1e-6,
            scales=0.0318,
            colors=0.0085,
            opacities=0.5 / 255 + 1e-6,
            quaternions=0.0022,
        ),
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


def convert(src_ply: Path, dst: Path) -> None:
    """Re-encode an ml-sharp ``.ply`` as the format named by ``dst``'s suffix.

    The vertex table is taken from the file untouched, so the result is byte-identical to
    writing that format straight from the scene the ``.ply`` was written from.
    """
    fmt = format_for(dst)
    # The camera goes along whenever the .ply has it: formats that can hold it (glTF's camera)
    # then match a direct write with the scene's metadata.
    records, meta = read_ply_records(src_ply)
    if fmt.needs_meta and meta is None:
        raise ValueError(f"{src_ply}: has no camera metadata, cannot write {fmt.suffix}")
    fmt.write(dst, records, meta)
