"""Magic bytes: what a file's first bytes say it is, without decoding anything.

The daemon judges untrusted files by their heads only; the worker uses the same ``sniff`` to
pick a decoder, so both processes agree on what a file is.
"""

from __future__ import annotations

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

# Magic bytes of things people drop by mistake, to say what the file really is.
_OTHER_KINDS = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"#!", "a script"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", "a BMP image"),
)


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


def describe_other(head: bytes) -> str | None:
    """What a refused file really is ("a PDF document"), to say so; None when unknown."""
    for magic, what in _OTHER_KINDS:
        if head.startswith(magic):
            return what
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in AVIF_BRANDS:
        return "an AVIF image"
    return None
