"""Why the worker refused a photo, in words a person can act on.

Pillow's exceptions are written for programmers and often hide the reason (a 12-bit JPEG is
"cannot identify image file"); these helpers look at the file's own header bytes to say what
it is and what to do, and keep the decoder's reason for ``error.json`` and the log.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image, JpegImagePlugin, PngImagePlugin

from sharpmld.core.errors import DecodeFailed, ImageTooLarge, format_advice
from sharpmld.intake.magic import HEAD_BYTES, jpeg_precision, sniff

HEADER_BYTES = 256 * 1024
"""How much of a refused file is read again to say why: past the largest EXIF segment (64 KB)."""


def unidentified_message(path: Path) -> tuple[str, str]:
    """Pillow hides why no decoder accepted a file; the magic bytes tell damage from mislabel.

    Returns the message and the decoder's own reason, asked of the one plugin the magic bytes
    point at (header parsing only), so that the reason reaches ``error.json`` and the log.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES)
    except OSError:
        head = b""
    kind = sniff(head[:HEAD_BYTES])
    reason = _plugin_reason(head, kind)
    if kind == "jpeg" and (bits := jpeg_precision(head)) not in (None, 8):
        return DecodeFailed.high_bit_depth.format(bits=bits), reason
    if kind is not None:
        name = {"jpeg": "JPEG", "png": "PNG", "heif": "HEIC", "video": "video"}[kind]
        return f"The file starts like a {name} image but its header is damaged. Export it again.", reason
    return "The file is not a JPEG, PNG or HEIC image that can be read.", reason


def _plugin_reason(head: bytes, kind: str | None) -> str:
    """What the one Pillow plugin for this kind says about the header ("" when it accepts it)."""
    plugin = {"jpeg": JpegImagePlugin.JpegImageFile, "png": PngImagePlugin.PngImageFile}.get(kind or "")
    if plugin is None:
        return ""
    try:
        plugin(io.BytesIO(head)).close()
    except Exception as exc:  # the reason is what we want; nothing is decoded here
        return str(exc)[:200]
    return ""


def declared_size(source: Path | bytes, formats: tuple[str, ...]) -> tuple[int, int] | None:
    """The size a file's header claims, read with Pillow's pixel guard off (no pixel is decoded),
    to name it when the guard refused the file before our own check could."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=formats) as im:
            return im.size
    except Exception:
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def too_large(max_pixels_side: int, size: tuple[int, int] | None, **details: Any) -> ImageTooLarge:
    """The rejection naming the limit and, whenever the header says it, the image's size."""
    message = format_advice(ImageTooLarge, max_pixels_side=max_pixels_side)
    if size is not None:
        width, height = size
        message = f"{message} {ImageTooLarge.sized.format(width=width, height=height)}"
        details.update(width=width, height=height)
    return ImageTooLarge(message, **details)


def decode_message(exc: BaseException) -> str:
    """A plain message for a decoder exception other than "no decoder took it"."""
    text = str(exc).strip()
    lowered = text.lower()
    if isinstance(exc, EOFError) or "truncated" in lowered or "premature end" in lowered:
        return "The image is truncated (the file ends early). Please copy or export it again."
    if "crc" in lowered or "checksum" in lowered:
        return "The image data is corrupted (a checksum does not match). Please export it again."
    detail = f" (decoder said: {text[:200]})" if text else ""
    return f"{format_advice(DecodeFailed)}{detail}"
