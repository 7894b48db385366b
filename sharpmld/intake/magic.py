"""Magic bytes: what a file's first bytes say it is, without decoding anything.

The daemon judges untrusted files by their heads only; the worker uses the same ``sniff`` to
pick a decoder, so both processes agree on what a file is.
"""

from __future__ import annotations

from typing import Literal

HEAD_BYTES = 32
"""How many leading bytes ``sniff`` needs."""

HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
"""ISO-BMFF brands of HEIC/HEIF stills and sequences that the HEVC decoder handles."""

AVIF_BRANDS = frozenset({b"avif", b"avis"})
"""AVIF files also carry ``mif1``; these brands mark them so they are refused, not mistaken."""

VIDEO_BRANDS = frozenset(
    {
        b"isom",
        b"iso2",
        b"iso4",
        b"iso5",
        b"iso6",
        b"mp41",
        b"mp42",
        b"avc1",
        b"qt  ",
        b"M4V ",
        b"M4VP",
        b"MSNV",
        b"dash",
        b"3gp4",
        b"3gp5",
        b"3gp6",
    }
)
"""ISO-BMFF brands of MP4 and QuickTime (MOV) movies, checked only after HEIF and AVIF."""

DESCRIBE_BYTES = 4096
"""How many leading bytes ``describe_other`` looks at: enough for a DNG's first IFD."""

# Magic bytes of things people drop by mistake, to say what the file really is. The keys are
# those of ``core.errors.FILE_KINDS``, which holds the words; RAW formats come before TIFF,
# because most of them are TIFF files underneath.
_OTHER_KINDS = (
    (b"%PDF", "pdf"),
    (b"PK\x03\x04", "zip"),
    (b"#!", "script"),
    (b"GIF8", "gif"),
    (b"FUJIFILMCCD-RAW", "raw"),  # Fujifilm RAF
    (b"IIRO", "raw"),  # Olympus ORF
    (b"IIRS", "raw"),
    (b"MMOR", "raw"),
    (b"IIU\x00", "raw"),  # Panasonic RW2
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"BM", "bmp"),
    (b"8BPS", "psd"),
    (b"\xff\x0a", "jxl"),  # JPEG XL codestream
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jxl"),  # JPEG XL container
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jp2"),  # JPEG 2000 (JP2 container)
    (b"\xff\x4f\xff\x51", "jp2"),  # JPEG 2000 codestream (SOC, SIZ)
)

RAW_SUFFIXES = frozenset(
    {".dng", ".cr2", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".pef", ".srw", ".3fr", ".erf"}
    | {".kdc", ".mef", ".mos", ".iiq", ".rwl", ".raw", ".orf", ".rw2", ".raf", ".cr3"}
)
"""RAW files that are plain TIFF underneath (NEF, ARW, PEF...) are told apart only by name."""

TAG_DNG_VERSION = 0xC612


def sniff(head: bytes) -> str | None:
    """The kind the first bytes announce ("jpeg", "png", "heif", "video"), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        box_end = min(int.from_bytes(head[0:4], "big"), len(head))
        brands = {head[8:12]}
        brands.update(head[i : i + 4] for i in range(16, box_end - 3, 4))
        if brands & AVIF_BRANDS:
            return None
        if brands & HEIF_BRANDS:
            return "heif"
        if brands & VIDEO_BRANDS:
            return "video"
    if len(head) >= 8 and head[4:8] in (b"moov", b"wide", b"mdat") and head[:2] == b"\x00\x00":
        return "video"  # QuickTime files written without an ftyp box
    return None


def describe_other(head: bytes, name: str = "") -> str | None:
    """What a refused file really is, as a ``FILE_KINDS`` key ("raw", "webp"...); None if unknown.

    ``head`` should hold up to ``DESCRIBE_BYTES``; ``name`` is only a hint for TIFF-based RAWs.
    """
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        box_end = min(int.from_bytes(head[0:4], "big"), len(head))
        brands = {head[8:12], *(head[i : i + 4] for i in range(16, box_end - 3, 4))}
        if brands & AVIF_BRANDS:
            return "avif"
        if b"crx " in brands:
            return "raw"  # Canon CR3
    kind = next((kind for magic, kind in _OTHER_KINDS if head.startswith(magic)), None)
    if kind == "tiff":
        if head[8:10] == b"CR" or _has_tiff_tag(head, TAG_DNG_VERSION):
            return "raw"  # Canon CR2; any DNG, whatever its name
        if any(name.lower().endswith(suffix) for suffix in RAW_SUFFIXES):
            return "raw"
    return kind


def _has_tiff_tag(head: bytes, tag: int) -> bool:
    """Whether the first IFD of the TIFF in ``head`` holds ``tag`` (False when cut off)."""
    order: Literal["little", "big"] = "little" if head.startswith(b"II") else "big"
    offset = int.from_bytes(head[4:8], order)
    count = int.from_bytes(head[offset : offset + 2], order)
    for i in range(min(count, 1000)):
        at = offset + 2 + 12 * i
        if at + 2 > len(head):
            return False
        if int.from_bytes(head[at : at + 2], order) == tag:
            return True
    return False


_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
"""JPEG start-of-frame markers (baseline, extended, progressive, lossless...): not DHT or DAC."""


def jpeg_precision(data: bytes) -> int | None:
    """The sample precision (8, 12, 16) in a JPEG's frame header; None when not found in ``data``.

    Walks the marker segments from SOI without decoding: a 12-bit JPEG is valid, just not
    readable by 8-bit decoders, and deserves to be named rather than called damaged.
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before it
            return None
        if marker in _SOF_MARKERS:
            return data[at + 4] if at + 4 < len(data) else None
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return None
