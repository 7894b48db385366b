"""Embedded colour profiles: photos are converted to sRGB before the model, unless told not to.

The profiles are built in the test (``tests.worker.icc``); the expected colours are computed
here from the profiles' own primaries and curves, not taken from the code under test.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageCms

from sharpmld.core.config import CHOICES
from sharpmld.queue import cache_index as cache
from sharpmld.worker import colour
from sharpmld.worker.decode import load_image
from tests.worker import icc

Array = np.ndarray[Any, Any]

# Saturated and ordinary colours, one per 8 x 8 block.
SWATCHES = [
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (200, 120, 60),
    (60, 160, 90),
    (128, 128, 128),
    (250, 250, 250),
]


def _swatch_image() -> Array:
    return np.repeat(np.array(SWATCHES, dtype=np.uint8)[None, :, :], 8, axis=0).repeat(8, axis=1)


def _srgb_decode(v: Array) -> Array:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _srgb_encode(v: Array) -> Array:
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def _expected_srgb(rgb: Array, primaries: Any, gamma: float | None) -> Array:
    """Relative colorimetric by hand: linearise, source RGB -> XYZ (D50) -> sRGB, clip."""
    v = rgb.astype(np.float64) / 255.0
    linear = v**gamma if gamma is not None else _srgb_decode(v)
    to_xyz = np.array(primaries).T
    from_xyz = np.linalg.inv(np.array(icc.SRGB).T)
    out = np.clip(linear @ (from_xyz @ to_xyz).T, 0.0, 1.0)
    return np.rint(_srgb_encode(out) * 255.0)


def _cms(rgb: Array, profile: bytes) -> Array:
    src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    dst = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    intent = ImageCms.Intent.RELATIVE_COLORIMETRIC
    out = ImageCms.profileToProfile(Image.fromarray(rgb), src, dst, renderingIntent=intent, outputMode="RGB")
    assert out is not None
    return np.asarray(out)


def _save(path: Path, rgb: Array, profile: bytes | None) -> Path:
    kwargs: dict[str, Any] = {} if profile is None else {"icc_profile": profile}
    if path.suffix == ".jpg":
        Image.fromarray(rgb).save(path, quality=95, **kwargs)
    elif path.suffix == ".heic":
        pillow_heif.from_pillow(Image.fromarray(rgb)).save(path, quality=95, **kwargs)
    else:
        Image.fromarray(rgb).save(path, **kwargs)
    return path


def _decode(path: Path, mode: str = "srgb") -> Any:
    return load_image(path, max_pixels_side=8000, colour=mode)


PROFILES = [
    pytest.param(icc.p3, icc.DISPLAY_P3, None, "Display P3", id="display-p3"),
    pytest.param(icc.adobe_rgb, icc.ADOBE_RGB, icc.ADOBE_GAMMA, "Adobe RGB (1998)", id="adobe-rgb"),
]


@pytest.mark.parametrize(("make", "primaries", "gamma", "name"), PROFILES)
def test_png_is_converted_to_the_colours_its_profile_means(
    tmp_path: Path, make: Any, primaries: Any, gamma: float | None, name: str
) -> None:
    raw = _swatch_image()
    img = _decode(_save(tmp_path / "p.png", raw, make()))
    want = _expected_srgb(raw, primaries, gamma)
    assert np.abs(img.rgb.astype(int) - want).max() <= 2
    assert np.array_equal(img.rgb, _cms(raw, make()))
    assert img.colour.as_entry() == {"profile": name, "converted": True}
    # Pure red is outside sRGB for both: it stays pure red (clipped), never wraps round.
    assert tuple(img.rgb[0, 0]) == (255, 0, 0)
    # An ordinary orange really moves: by hand, P3 (200, 120, 60) is sRGB (213, 115, 42).
    moved = np.abs(img.rgb[0, 24].astype(int) - raw[0, 24].astype(int))
    assert moved.max() >= 8
    assert abs(float(np.abs(img.rgb.astype(int) - raw.astype(int)).mean()) / 255) > 0.01


@pytest.mark.parametrize("suffix", [".jpg", ".heic"])
def test_lossy_formats_convert_their_decoded_pixels(tmp_path: Path, suffix: str) -> None:
    path = _save(tmp_path / f"p{suffix}", _swatch_image(), icc.p3())
    with Image.open(path) as im:
        assert im.info.get("icc_profile") == icc.p3()
        raw = np.asarray(im.convert("RGB"))
    img = _decode(path)
    assert np.array_equal(img.rgb, _cms(raw, icc.p3()))
    assert img.colour.profile == "Display P3"
    assert not np.array_equal(img.rgb, raw)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_as_is_keeps_the_raw_pixels_and_still_names_the_profile(tmp_path: Path, suffix: str) -> None:
    path = _save(tmp_path / f"p{suffix}", _swatch_image(), icc.adobe_rgb())
    with Image.open(path) as im:
        raw = np.asarray(im.convert("RGB"))
    img = _decode(path, "as-is")
    assert np.array_equal(img.rgb, raw)
    assert img.colour.as_entry() == {"profile": "Adobe RGB (1998)", "converted": False}


def test_no_profile_and_srgb_profile_leave_pixels_alone(tmp_path: Path) -> None:
    raw = _swatch_image()
    bare = _decode(_save(tmp_path / "bare.png", raw, None))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    tagged = _decode(_save(tmp_path / "srgb.png", raw, srgb))
    assert np.array_equal(bare.rgb, raw) and np.array_equal(tagged.rgb, raw)
    assert bare.colour.as_entry() == {"profile": "none", "converted": False}
    assert tagged.colour.profile.lower().startswith("srgb") and not tagged.colour.converted


@pytest.mark.parametrize(
    ("blob", "words"),
    [
        (b"this is not an ICC profile at all", "could not be read"),
        (icc.p3()[:200], "could not be read"),  # truncated inside the tag table
    ],
)
def test_a_broken_profile_falls_back_to_as_is_with_a_note(tmp_path: Path, blob: bytes, words: str) -> None:
    raw = _swatch_image()
    img = _decode(_save(tmp_path / "p.png", raw, blob))
    assert np.array_equal(img.rgb, raw)
    entry = img.colour.as_entry()
    assert entry["converted"] is False and entry["profile"] == "unreadable"
    assert words in entry["note"] and "as they are" in entry["note"]


def test_a_profile_for_another_colour_space_is_noted_not_applied() -> None:
    gray = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    raw = _swatch_image()
    rgb, result = colour.to_srgb(raw, gray, "srgb")
    assert np.array_equal(rgb, raw)
    assert not result.converted and result.note is not None and "not RGB" in result.note


def test_the_setting_is_the_modules_choices() -> None:
    assert CHOICES[("model", "colour")] == colour.COLOUR_MODES


def test_cache_key_includes_the_setting() -> None:
    common: dict[str, Any] = dict(checkpoint_sha256="c", factory="sharp", formats=["ply"], f_px_override=None)
    assert cache.salt(**common, colour="as-is") != cache.salt(**common, colour="srgb")
    # "srgb" adds nothing: entries cached before the setting existed keep matching.
    assert cache.salt(**common, colour="srgb") == cache.salt(**common)
