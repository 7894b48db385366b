"""Decode one untrusted photo into the RGB array and focal length the model needs.

This module runs only in the worker subprocess: decoding attacker-controlled bytes can crash
or exhaust a process, and the daemon must survive that. Every decoder failure becomes a
DecodeFailed or ImageTooLarge with a plain message, so one bad file rejects only itself.

The focal length follows ml-sharp's own rule exactly (35 mm equivalent, else the raw focal
length, tiny values treated as phone sensors, else 30 mm), so results match running ml-sharp
by hand. Orientation is applied for all eight EXIF values, where ml-sharp handles only 3/6/8.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pillow_heif
from PIL import Image, ImageFile, UnidentifiedImageError

from sharpmld.core.errors import DecodeFailed, SharpmldError
from sharpmld.core.fsio import atomic_writer
from sharpmld.intake.magic import HEAD_BYTES, sniff
from sharpmld.worker.colour import ColourResult, to_srgb
from sharpmld.worker.png_chunks import without_bad_ancillary
from sharpmld.worker.refusals import declared_size, decode_message, too_large, unidentified_message

ACCEPTED_FORMATS = ("JPEG", "PNG", "HEIF")
"""The only decoders the worker lets Pillow try, whatever else is installed (AVIF, TIFF...)."""

TAG_ORIENTATION = 0x0112
TAG_EXIF_IFD = 0x8769
TAG_FOCAL_35MM = 0xA405
TAG_FOCAL_LENGTH = 0x920A

DEFAULT_FOCAL_35MM = 30.0
SMALL_SENSOR_FACTOR = 8.4
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)

_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,  # PIL rotates counter-clockwise: 270 CCW is 90 CW
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_heif_registered = False


def _ensure_heif() -> None:
    """Register pillow-heif's opener once, when first needed rather than on import.

    Thumbnails, depth maps and auxiliary images are switched off: we never want them, and
    each is more untrusted data to parse.
    """
    global _heif_registered
    if not _heif_registered:
        pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
        _heif_registered = True


@dataclass
class LoadedImage:
    """A decoded photo, upright, as 8-bit RGB, with the focal length the model will use."""

    rgb: np.ndarray[Any, np.dtype[np.uint8]]
    f_px: float
    f_px_source: str
    focal_35mm: float
    orientation: int
    width: int
    height: int
    format: str
    colour: ColourResult = field(default_factory=lambda: ColourResult("none", False))


def _number(value: object) -> float | None:
    """An EXIF numeric value (int, rational, or a one-element tuple) as a finite float."""
    if isinstance(value, tuple):
        value = value[0] if value else None
    if value is None:
        return None
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return result if math.isfinite(result) else None


def _read_exif(im: Image.Image) -> tuple[int, float | None, float | None]:
    """Orientation (IFD0) and the two focal lengths (Exif IFD); damaged EXIF reads as absent.

    A photo whose pixels decode is still usable when its metadata is broken, so EXIF errors
    fall back to the defaults instead of rejecting the image.
    """
    try:
        exif = im.getexif()
        exif_ifd = dict(exif.get_ifd(TAG_EXIF_IFD))
    except MemoryError:
        raise
    except Exception:
        return 1, None, None
    orientation = _number(exif.get(TAG_ORIENTATION))
    f35 = _number(exif_ifd.get(TAG_FOCAL_35MM, exif.get(TAG_FOCAL_35MM)))
    focal = _number(exif_ifd.get(TAG_FOCAL_LENGTH, exif.get(TAG_FOCAL_LENGTH)))
    if orientation is None or not orientation.is_integer() or not 1 <= orientation <= 8:
        orientation = 1
    return int(orientation), f35, focal


def focal_px(width: int, height: int, f35: float | None, focal: float | None) -> tuple[float, float, str]:
    """``(f_px, focal_35mm, source)`` by ml-sharp's rule, for the upright image size.

    One deliberate difference: a FocalLength of 0 or less counts as missing (ml-sharp would
    produce f_px = 0, which the model cannot use).
    """
    if f35 is not None and f35 >= 1:
        value, source = f35, "exif_35mm"
    elif focal is None or focal <= 0:
        value, source = DEFAULT_FOCAL_35MM, "default_30mm"
    elif focal < 10:
        value, source = focal * SMALL_SENSOR_FACTOR, "exif_focal_length_x8.4"
    else:
        value, source = focal, "exif_focal_length"
    return value * math.hypot(width, height) / FULL_FRAME_DIAGONAL_MM, value, source


def _to_rgb(im: Image.Image) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """8-bit RGB pixels; alpha is dropped (not composited), like ml-sharp's ``img[..., :3]``."""
    if im.mode.startswith("I;16") or im.mode == "I":
        wide = np.clip(np.asarray(im).astype(np.int64), 0, 65535)
        gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)
        return np.ascontiguousarray(np.dstack((gray, gray, gray)))
    if im.mode == "F":
        gray = np.clip(np.rint(np.asarray(im)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.dstack((gray, gray, gray)))
    if im.mode in ("P", "PA") or "transparency" in im.info:
        im = im.convert("RGBA")  # palette transparency must expand before alpha is dropped
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def _starts_like_png(path: Path) -> bool:
    with open(path, "rb") as f:
        return sniff(f.read(HEAD_BYTES)) == "png"


def _png_source(path: Path) -> Path | bytes:
    """The PNG to decode: the file itself, or its bytes without the ancillary chunks whose
    checksum is wrong (the original on disk is never changed)."""
    fixed = without_bad_ancillary(path.read_bytes())
    return path if fixed is None else fixed[0]


def _verify_png(source: Path | bytes) -> None:
    """Check every chunk's CRC: Pillow's decoder skips IDAT checksums and would turn a
    corrupted PNG into garbage pixels (and a garbage splat) instead of an error. A stream of
    its own, so the image being decoded keeps its file position."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=("PNG",)) as check:
        check.verify()


def load_image(
    path: Path, *, max_pixels_side: int, f_px_override: float | None = None, colour: str = "srgb"
) -> LoadedImage:
    """Decode ``path`` upright into 8-bit RGB (in sRGB unless ``colour`` is "as-is", see
    ``colour``) and compute its focal length in pixels.

    The size is checked from the header before any pixel is decoded, and Pillow's
    decompression-bomb guard is set from the same limit (set on every call, because importing
    ml-sharp's io module resets it to 200 megapixels).
    """
    _ensure_heif()
    Image.MAX_IMAGE_PIXELS = max_pixels_side * max_pixels_side
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    data: Path | bytes = path
    with warnings.catch_warnings():
        # Metadata warnings are not actionable; a bomb warning must stop the decode.
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            if _starts_like_png(path):
                data = _png_source(path)
            feed = io.BytesIO(data) if isinstance(data, bytes) else data
            with Image.open(feed, formats=ACCEPTED_FORMATS) as im:
                width, height = im.size
                if width > max_pixels_side or height > max_pixels_side:
                    raise too_large(max_pixels_side, (width, height))
                fmt = "heif" if im.format == "HEIF" else "png" if im.format == "PNG" else "jpeg"
                if fmt == "png":
                    _verify_png(data)
                orientation, f35, focal = _read_exif(im)
                icc = im.info.get("icc_profile")
                im.load()
                if fmt == "heif":
                    # libheif already applied the container's rotation and mirroring, and
                    # pillow-heif reset the EXIF tag to 1; keep the original for reporting.
                    orientation = int(im.info.get("original_orientation") or 1)
                    upright: Image.Image = im
                elif orientation in _TRANSPOSE:
                    upright = im.transpose(_TRANSPOSE[orientation])
                else:
                    upright = im
                rgb = _to_rgb(upright)
            rgb, colour_done = to_srgb(rgb, icc if isinstance(icc, bytes) else None, colour)
        except SharpmldError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise too_large(max_pixels_side, declared_size(data, ACCEPTED_FORMATS), decoder=str(exc)) from exc
        except MemoryError:
            raise
        except UnidentifiedImageError as exc:
            message, reason = unidentified_message(path)
            raise DecodeFailed(message, decoder=reason or repr(exc)[:300]) from exc
        except Exception as exc:  # any decoder failure on untrusted bytes rejects the image
            raise DecodeFailed(decode_message(exc), decoder=repr(exc)[:300]) from exc
    out_h, out_w = int(rgb.shape[0]), int(rgb.shape[1])
    f_px, f35_used, source = focal_px(out_w, out_h, f35, focal)
    if f_px_override is not None:
        f_px, source = float(f_px_override), "override"
    return LoadedImage(rgb, f_px, source, f35_used, orientation, out_w, out_h, fmt, colour_done)


def write_working_copy(img: LoadedImage, path: Path) -> None:
    """Write the upright pixels as a lossless PNG with no metadata at all.

    The working copy is built from the bare array, so no EXIF (GPS, serial numbers), ICC
    profile or text chunk of the original can reach it. Compression level 1: it is a
    short-lived file, and speed matters more than size.
    """
    rgb = img.rgb
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {rgb.dtype} {rgb.shape}")
    clean = Image.fromarray(np.ascontiguousarray(rgb))
    with atomic_writer(path) as f:
        clean.save(f, format="PNG", compress_level=1)
