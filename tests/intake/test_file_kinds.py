"""Files people really drop that are images, just not ones we read: each is named, with a way out.

Every file here is built the way the real format lays it out (by Pillow where it can write the
format, else byte by byte), and judged by the daemon's inventory, which sees only its head.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sharpmld.core.units import MB
from sharpmld.intake.inventory import inventory

from . import corpus


def _pillow(fmt: str, **kwargs: object) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        Image.fromarray(corpus.quadrants()).save(path, fmt, **kwargs)

    return write


def write_cr2(path: Path) -> None:
    """Canon CR2: a TIFF header followed by "CR", major version 2."""
    path.write_bytes(b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(512))


def write_jxl_codestream(path: Path) -> None:
    path.write_bytes(b"\xff\x0a" + bytes(range(64)))


def write_jxl_container(path: Path) -> None:
    signature = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
    ftyp = struct.pack(">I", 20) + b"ftypjxl \x00\x00\x00\x00jxl "
    path.write_bytes(signature + ftyp + bytes(64))


KINDS: list[tuple[str, Callable[[Path], object], str]] = [
    ("photo.dng", corpus.write_dng, "RAW"),
    ("IMG_0001.CR2", write_cr2, "RAW"),
    ("scan.tif", _pillow("TIFF"), "TIFF"),
    ("anim.gif", _pillow("GIF"), "GIF"),
    ("paint.bmp", _pillow("BMP"), "BMP"),
    ("web.webp", _pillow("WEBP"), "WebP"),
    ("pic.avif", corpus.write_avif, "AVIF"),
    ("pic.jxl", write_jxl_codestream, "JPEG XL"),
    ("box.jxl", write_jxl_container, "JPEG XL"),
    ("pic.jp2", _pillow("JPEG2000"), "JPEG 2000"),
    ("pic.j2k", _pillow("JPEG2000", no_jp2=True), "JPEG 2000"),
]


@pytest.mark.parametrize(("name", "make", "named"), KINDS, ids=[k[0] for k in KINDS])
def test_image_types_we_do_not_read_are_named_with_what_to_do(
    tmp_path: Path, name: str, make: Callable[[Path], object], named: str
) -> None:
    make(tmp_path / name)
    (rejected,) = inventory(tmp_path, max_file_bytes=20 * MB, max_job_bytes=100 * MB, max_images=10).rejected
    assert (rejected.rel, rejected.code) == (name, "unsupported_type")
    message = rejected.message
    assert named in message, message
    assert "not a photo" not in message, message
    assert "JPEG, PNG and HEIC" in message, message  # which types are accepted
    assert "export" in message.lower(), message  # and how to get one


def test_a_dng_is_named_raw_whatever_its_name(tmp_path: Path) -> None:
    """A DNG is told from a plain TIFF by its DNGVersion tag; other TIFF-based RAWs by name."""
    corpus.write_dng(tmp_path / "renamed.tif")
    _pillow("TIFF")(tmp_path / "plain.tif")
    _pillow("TIFF")(tmp_path / "DSC_0001.NEF")
    found = inventory(tmp_path, max_file_bytes=20 * MB, max_job_bytes=100 * MB, max_images=10)
    messages = {r.rel: r.message for r in found.rejected}
    assert "RAW" in messages["renamed.tif"], messages
    assert "RAW" in messages["DSC_0001.NEF"], messages
    assert "TIFF" in messages["plain.tif"] and "RAW" not in messages["plain.tif"], messages


def test_big_endian_dng_is_named_raw(tmp_path: Path) -> None:
    entries = [(0x0100, 4, 1, struct.pack(">I", 64)), (0xC612, 1, 4, bytes((1, 6, 0, 0)))]
    (tmp_path / "be.dng").write_bytes(corpus.tiff_ifd(entries, big_endian=True) + bytes(64))
    (rejected,) = inventory(tmp_path, max_file_bytes=MB, max_job_bytes=MB, max_images=1).rejected
    assert "RAW" in rejected.message


def test_documents_still_say_what_they_are(tmp_path: Path) -> None:
    corpus.write_pdf(tmp_path / "doc.jpg")
    corpus.write_zip(tmp_path / "zip.jpg")
    (tmp_path / "noise.jpg").write_bytes(np.random.default_rng(3).bytes(64))
    found = inventory(tmp_path, max_file_bytes=MB, max_job_bytes=MB, max_images=5)
    messages = {r.rel: r.message for r in found.rejected}
    assert "PDF" in messages["doc.jpg"] and "ZIP" in messages["zip.jpg"]
    assert all("JPEG, PNG" in m for m in messages.values()), messages
