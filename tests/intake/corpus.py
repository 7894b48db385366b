"""Generate test inputs (good photos and hostile files) into a temporary folder.

Everything is built here with Pillow, pillow-heif and raw bytes, so the suite needs no
fixtures on disk and each file is exactly as broken as its name says.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pillow_heif
from PIL import Image, PngImagePlugin, TiffImagePlugin

# Four flat colours in the four quadrants: every flip or rotation moves at least one corner.
QUADRANT_COLOURS = ((230, 20, 20), (20, 200, 20), (20, 20, 230), (240, 240, 20))
GPS_MARKER = b"SHARPMLD-GPS-MARKER"


def quadrants(width: int = 48, height: int = 32) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """An asymmetric RGB image: top-left red, top-right green, bottom-left blue, else yellow."""
    a = np.zeros((height, width, 3), np.uint8)
    hh, hw = height // 2, width // 2
    a[:hh, :hw], a[:hh, hw:], a[hh:, :hw], a[hh:, hw:] = QUADRANT_COLOURS
    return a


def gradient(width: int = 40, height: int = 24) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Every pixel different, so an exact comparison catches any transform mistake."""
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack(((x * 6) % 256, (y * 10) % 256, (x * 3 + y * 7) % 256)).astype(np.uint8)


def make_exif(
    *,
    orientation: int | None = None,
    focal_35mm: float | None = None,
    focal: float | None = None,
    gps: bool = False,
) -> Image.Exif:
    """EXIF with the given orientation (IFD0), focal lengths (Exif IFD) and a GPS block."""
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    sub: dict[int, Any] = {}
    if focal_35mm is not None:
        sub[0xA405] = int(focal_35mm)
    if focal is not None:
        sub[0x920A] = TiffImagePlugin.IFDRational(round(focal * 100), 100)
    if sub:
        exif[0x8769] = sub
    if gps:
        exif[0x8825] = {
            1: "N",
            2: (37.0, 46.0, 30.0),
            3: "W",
            4: (122.0, 25.0, 9.0),
            0x1B: b"ASCII\x00\x00\x00" + GPS_MARKER,  # GPSProcessingMethod: findable bytes
        }
    return exif


def write_jpeg(
    path: Path,
    rgb: np.ndarray[Any, np.dtype[np.uint8]] | None = None,
    *,
    exif: Image.Exif | None = None,
    quality: int = 95,
    icc: bytes | None = None,
) -> Path:
    im = Image.fromarray(quadrants() if rgb is None else rgb)
    kwargs: dict[str, Any] = {"quality": quality, "subsampling": 0}
    if exif is not None:
        kwargs["exif"] = exif.tobytes()
    if icc is not None:
        kwargs["icc_profile"] = icc
    im.save(path, "JPEG", **kwargs)
    return path


def write_png(path: Path, im: Image.Image | np.ndarray[Any, Any] | None = None, **kwargs: Any) -> Path:
    if im is None:
        im = quadrants()
    if isinstance(im, np.ndarray):
        im = Image.fromarray(im)
    if isinstance(kwargs.get("exif"), Image.Exif):
        kwargs["exif"] = kwargs["exif"].tobytes()
    im.save(path, "PNG", **kwargs)
    return path


def write_heic(
    path: Path,
    rgb: np.ndarray[Any, np.dtype[np.uint8]] | None = None,
    *,
    exif: Image.Exif | None = None,
) -> Path:
    """A lossless HEIC; an EXIF orientation becomes the container's irot/imir transforms."""
    heif = pillow_heif.from_pillow(Image.fromarray(quadrants() if rgb is None else rgb))
    kwargs: dict[str, Any] = {"quality": -1, "chroma": 444}
    if exif is not None:
        kwargs["exif"] = exif.tobytes()
    heif.save(path, **kwargs)
    return path


def write_avif(path: Path) -> Path:
    Image.fromarray(quadrants()).save(path, "AVIF")
    return path


def write_truncated_jpeg(path: Path, keep: float = 0.6) -> Path:
    buf = io.BytesIO()
    Image.fromarray(gradient(200, 150)).save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_bad_crc_png(path: Path) -> Path:
    """A PNG whose IHDR checksum (bytes 29-32) is wrong."""
    buf = io.BytesIO()
    Image.fromarray(quadrants()).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[29] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def write_bad_idat_crc_png(path: Path) -> Path:
    """A PNG whose pixel data checksum is wrong (Pillow's decoder alone would not notice)."""
    buf = io.BytesIO()
    Image.fromarray(gradient(50, 50)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    at = data.index(b"IDAT")
    length = int.from_bytes(data[at - 4 : at], "big")
    data[at + 4 + length] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bytes(width: int, height: int, idat: bytes, *, bit_depth: int = 8, colour: int = 2) -> bytes:
    """A PNG with a hand-written IHDR; ``idat`` is the (compressed) body, valid or not."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def write_huge_header_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """Claims an enormous size but holds a few bytes: must be refused from the header."""
    path.write_bytes(png_bytes(width, height, zlib.compress(b"\x00" * 64)))
    return path


def write_bomb_png(path: Path, side: int) -> Path:
    """A genuinely valid 1-bit ``side``×``side`` PNG: tiny on disk, huge once decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    parts = []
    rows_per_step = max(1, (1 << 20) // len(row))
    for start in range(0, side, rows_per_step):
        parts.append(comp.compress(row * min(rows_per_step, side - start)))
    parts.append(comp.flush())
    path.write_bytes(png_bytes(side, side, b"".join(parts), bit_depth=1, colour=0))
    return path


def write_pdf(path: Path) -> Path:
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n")
    return path


def write_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("photo.jpg", b"\xff\xd8\xff" + b"\x00" * 64)
    return path


def write_script(path: Path) -> Path:
    path.write_bytes(b"#!/bin/sh\necho 'this is not a photo'\n")
    return path


def write_empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def write_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def write_junk(folder: Path) -> list[str]:
    """System clutter in ``folder``; returns the names that inventory must ignore."""
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    write_jpeg(folder / "._IMG_0001.jpg")  # AppleDouble, even if it looked like a photo
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (folder / "desktop.ini").write_text("[.ShellClassInfo]\n")
    (folder / "Icon\r").write_bytes(b"")
    macosx = folder / "__MACOSX"
    macosx.mkdir()
    write_jpeg(macosx / "inside.jpg")
    hidden = folder / ".hidden"
    hidden.mkdir()
    write_jpeg(hidden / "secret.jpg")
    return [".DS_Store", "._IMG_0001.jpg", "Thumbs.db", "desktop.ini", "Icon\r", "__MACOSX"]


def png_chunk_types(data: bytes) -> list[bytes]:
    """The chunk types of a PNG, in order (to prove a working copy holds no metadata)."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kinds.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return kinds


# -- files people really have that sharpmld once named wrongly --------------------------------


def _segment(marker: int, body: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(body) + 2) + body


def twelve_bit_jpeg(sof: int = 0xC1, width: int = 64, height: int = 48) -> bytes:
    """A JPEG with 12-bit samples (medical, some cameras' extended mode): SOF1 or SOF2 with
    sample precision 12 and 16-bit quantisation tables, as libjpeg's 12-bit build writes it.
    Pillow cannot write one, so the bytes are laid out here."""
    jfif = _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    dqt = _segment(0xDB, b"\x10" + struct.pack(">64H", *([1] * 64)))
    frame = _segment(sof, struct.pack(">BHHB", 12, height, width, 1) + b"\x01\x11\x00")
    dht = _segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")
    scan = _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    return b"\xff\xd8" + jfif + dqt + frame + dht + scan + bytes(32) + b"\xff\xd9"


def png_with_text(*, bad_crc_on: bytes | None) -> tuple[bytes, np.ndarray[Any, np.dtype[np.uint8]]]:
    """A real PNG with a ``tEXt`` comment before its pixels, one chunk's CRC optionally broken."""
    rgb = quadrants(24, 16)
    buf = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "made by a scanner that writes a wrong checksum")
    Image.fromarray(rgb).save(buf, "PNG", pnginfo=info)
    data = bytearray(buf.getvalue())
    if bad_crc_on is not None:
        at = data.index(bad_crc_on)
        length = int.from_bytes(data[at - 4 : at], "big")
        data[at + 4 + length] ^= 0xFF
    assert png_chunk_types(bytes(data))[:3] == [b"IHDR", b"tEXt", b"IDAT"]
    return bytes(data), rgb


def tiff_ifd(entries: list[tuple[int, int, int, bytes]], *, big_endian: bool = False) -> bytes:
    """A one-IFD TIFF: ``(tag, type, count, value-or-offset bytes)`` entries, sorted by tag."""
    e = ">" if big_endian else "<"
    head = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(e + "I", 8)
    body = struct.pack(e + "H", len(entries))
    for tag, kind, count, value in sorted(entries):
        body += struct.pack(e + "HHI", tag, kind, count) + value.ljust(4, b"\x00")
    return head + body + struct.pack(e + "I", 0)


def write_dng(path: Path) -> Path:
    """A DNG's first IFD: a TIFF whose tags include DNGVersion (0xC612) = 1.4.0.0."""
    entries = [
        (0x00FE, 4, 1, struct.pack("<I", 1)),  # NewSubFileType: a reduced-resolution preview
        (0x0100, 4, 1, struct.pack("<I", 256)),  # ImageWidth
        (0x0101, 4, 1, struct.pack("<I", 171)),  # ImageLength
        (0x0103, 3, 1, struct.pack("<H", 1)),  # Compression: none
        (0x0106, 3, 1, struct.pack("<H", 2)),  # PhotometricInterpretation: RGB
        (0x010F, 2, 4, b"Cam\x00"),  # Make
        (0xC612, 1, 4, bytes((1, 4, 0, 0))),  # DNGVersion
        (0xC613, 1, 4, bytes((1, 1, 0, 0))),  # DNGBackwardVersion
    ]
    path.write_bytes(tiff_ifd(entries) + bytes(4096))
    return path
