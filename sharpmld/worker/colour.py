"""Bring a photo's pixels into sRGB before the model sees them (worker side).

SHARP was trained on sRGB images, and ml-sharp passes pixels straight to it whatever profile
the file embeds. An iPhone photo is Display P3 and a camera may write Adobe RGB, so their
numbers mean different colours: used as sRGB they come out duller or shifted (a mean error of
about 0.05 on a 0-1 scale against the converted colours). ``[model] colour = "srgb"`` converts
with Pillow's ImageCms (LittleCMS), relative colorimetric, so colours outside sRGB are clipped
to its gamut; ``"as-is"`` keeps ml-sharp's behaviour.

The embedded profile is untrusted bytes like the rest of the file: one that cannot be read or
used leaves the pixels as they are, with a note for result.json, and never rejects the photo.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageCms

COLOUR_MODES = ("srgb", "as-is")
"""The values of ``[model] colour``; kept equal to the configuration's choices by a test."""

NO_PROFILE = "none"

_srgb: ImageCms.ImageCmsProfile | None = None


@dataclass(frozen=True)
class ColourResult:
    """What was done to one photo's colours, for its result.json entry.

    ``profile`` is the embedded profile's description ("Display P3", "none"...); ``note``
    says, once and in plain words, why a profile present was not applied.
    """

    profile: str
    converted: bool
    note: str | None = None

    def as_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"profile": self.profile, "converted": self.converted}
        if self.note:
            entry["note"] = self.note
        return entry


def _srgb_profile() -> ImageCms.ImageCmsProfile:
    global _srgb
    if _srgb is None:
        _srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return _srgb


def _description(profile: ImageCms.ImageCmsProfile) -> str:
    text = (profile.profile.profile_description or "").strip()
    return text[:200] or "unnamed profile"


def _is_srgb(description: str) -> bool:
    """An sRGB profile needs no conversion (converting would only add rounding)."""
    return description.lower().startswith("srgb")


def to_srgb(
    rgb: np.ndarray[Any, np.dtype[np.uint8]], icc: bytes | None, mode: str
) -> tuple[np.ndarray[Any, np.dtype[np.uint8]], ColourResult]:
    """``rgb`` (upright, 8-bit, H x W x 3) converted from the ``icc`` profile to sRGB.

    ``mode`` is ``[model] colour``. The profile is described even in "as-is" mode, so the
    result says what was ignored.
    """
    if not icc:
        return rgb, ColourResult(NO_PROFILE, False)
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = _description(source)
        space = source.profile.xcolor_space.strip()
    except MemoryError:
        raise
    except Exception:
        note = "the embedded colour profile could not be read; the pixels were used as they are"
        return rgb, ColourResult("unreadable", False, note)
    if mode == "as-is" or _is_srgb(description):
        return rgb, ColourResult(description, False)
    if space != "RGB":
        note = f"the embedded colour profile is for {space or 'unknown'} colour, not RGB; not applied"
        return rgb, ColourResult(description, False, note)
    try:
        transform = ImageCms.buildTransform(
            source, _srgb_profile(), "RGB", "RGB", renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC
        )
        image = Image.fromarray(rgb)
        ImageCms.applyTransform(image, transform, inPlace=True)  # one 12 MP copy fewer
    except MemoryError:
        raise
    except Exception:
        note = "the embedded colour profile could not be applied; the pixels were used as they are"
        return rgb, ColourResult(description, False, note)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8)), ColourResult(description, True)
