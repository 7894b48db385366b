"""PNG chunks with a wrong checksum on metadata only: drop them, as libpng and browsers do.

A PNG chunk whose type starts with a lower-case letter is *ancillary* (a text comment, a time
stamp, a colour hint): the image is complete without it. Pillow refuses the whole file when
any chunk's CRC is wrong, so a scanner that writes a bad checksum on its comment made the photo
unusable here while every viewer showed it. Critical chunks (IHDR, PLTE, IDAT, IEND) are never
touched: a bad checksum there is still a damaged image, and is refused as one.
"""

from __future__ import annotations

import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_ancillary(kind: bytes) -> bool:
    """Bit 5 of the first type byte (lower case) marks a chunk a decoder may skip."""
    return bool(kind[0] & 0x20)


def without_bad_ancillary(data: bytes) -> tuple[bytes, list[str]] | None:
    """``data`` without its ancillary chunks whose CRC is wrong, and their types; None if none.

    A file cut short or malformed is returned as None too: the decoder then judges it as is.
    """
    if not data.startswith(SIGNATURE):
        return None
    out = [SIGNATURE]
    dropped: list[str] = []
    at = len(SIGNATURE)
    while at + 12 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        end = at + 12 + length
        if end > len(data):
            break
        kind = data[at + 4 : at + 8]
        crc = int.from_bytes(data[end - 4 : end], "big")
        if is_ancillary(kind) and zlib.crc32(data[at + 4 : end - 4]) != crc:
            dropped.append(kind.decode("latin-1"))
        else:
            out.append(data[at:end])
        at = end
        if kind == b"IEND":
            break
    if not dropped:
        return None
    out.append(data[at:])
    return b"".join(out), dropped
