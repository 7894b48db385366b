"""Hostile inputs, all at once, through one real ``--burst`` daemon.

Every kind of bad input in ``KINDS`` is generated here (nothing is committed), dropped into the
inbox of one root as a job of its own, and processed by a single daemon run. Each kind states
its exact outcome: the state it ends in, the job's stable code and, per file, the codes in
``result.json``. Then the invariants every run must keep: the daemon exits 0, ``working/`` is
empty, each job is in exactly one place, every original is still inside its job's ``input/``
byte for byte (symlinks still pointing where they pointed), and nothing outside the root changed.

``KINDS`` is the table the README quotes: kind -> outcome.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sharpmld.core.units import MB
from sharpmld.intake.magic import sniff
from sharpmld.queue.jobid import is_job_id
from tests.intake import corpus
from tests.support import harness
from tests.support.harness import Daemon, jobs

pytestmark = pytest.mark.timeout(180)

MAX_FILE_MB = 1
MAX_JOB_MB = 2
LINUX = sys.platform.startswith("linux")

Writer = Callable[[Path, Path], object]
"""Creates one input at the path; the second argument is a folder outside the root."""


# -- generators ----------------------------------------------------------------------------


def _plain(fn: Callable[[Path], object]) -> Writer:
    return lambda path, _outside: fn(path)


def _bytes(data: bytes) -> Writer:
    return lambda path, _outside: path.write_bytes(data)


def _jpeg(path: Path) -> None:
    corpus.write_jpeg(path, corpus.gradient(48, 32))


def _tiny_png(seed: int) -> Writer:
    def write(path: Path, _outside: Path) -> None:
        rgb = np.random.default_rng(seed).integers(20, 200, (8, 8, 3), dtype=np.uint8)
        corpus.write_png(path, rgb)

    return write


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(corpus.gradient(48, 32)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _padded_jpeg(size: int) -> Writer:
    """A JPEG signature followed by zeros: passes the magic-byte check, over a size limit."""
    return _bytes(b"\xff\xd8\xff\xe0" + b"\x00" * (size - 4))


def _png_header_only(path: Path) -> None:
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + corpus._chunk(b"IHDR", ihdr))


def _huge_sof_jpeg(path: Path) -> None:
    """A real JPEG whose frame header is patched to claim 65500×65500 pixels."""
    data = bytearray(_jpeg_bytes())
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", 65500, 65500)
    path.write_bytes(bytes(data))


def _garbage_exif_jpeg(path: Path) -> None:
    """A good JPEG with an APP1 Exif segment whose IFD points far past its end."""
    body = b"Exif\x00\x00" + b"II*\x00\xff\xff\xff\x7f" + bytes(range(256)) * 2
    app1 = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    data = _jpeg_bytes()
    path.write_bytes(data[:2] + app1 + data[2:])


def _png16_gray(path: Path) -> None:
    pixels = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000 + 500).astype(np.uint16)
    Image.fromarray(pixels).save(path, "PNG")
    with Image.open(path) as im:
        assert im.mode == "I;16"


def _png16_rgb(path: Path) -> None:
    rows = b"".join(b"\x00" + bytes((y * 7 + x) % 200 + 20 for x in range(8 * 6)) for y in range(8))
    path.write_bytes(corpus.png_bytes(8, 8, zlib.compress(rows), bit_depth=16, colour=2))


def _broken_heic(path: Path) -> None:
    """A real HEIC whose hvcC box (the decoder configuration, inside meta) is overwritten."""
    corpus.write_heic(path, corpus.gradient(48, 32))
    data = bytearray(path.read_bytes())
    at = data.index(b"hvcC")
    data[at + 4 : at + 40] = b"\xff" * 36
    path.write_bytes(bytes(data))
    assert sniff(bytes(data[:32])) == "heif"  # still looks like a HEIC to the daemon


def _avif_bytes() -> bytes:
    ftyp = b"ftypavif\x00\x00\x00\x00avifmif1miaf"
    return struct.pack(">I", len(ftyp) + 4) + ftyp + b"\x00\x00\x00\x08mdat" + b"\x00" * 64


def _symlink_outside(path: Path, outside: Path) -> None:
    os.symlink(outside / "target.jpg", path)


def _symlink_outside_dir(path: Path, outside: Path) -> None:
    os.symlink(outside / "folder", path, target_is_directory=True)


def _symlink_outside_toml(path: Path, outside: Path) -> None:
    os.symlink(outside / "job.toml", path)


def _symlink_to(target: str) -> Writer:
    return lambda path, _outside: os.symlink(target, path)


def _fifo(path: Path, _outside: Path) -> None:
    os.mkfifo(path)


def _unix_socket(path: Path, _outside: Path) -> None:
    """A socket file; bound by a relative name, as socket paths are limited to ~100 bytes."""
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(path.name)
    finally:
        os.chdir(cwd)


def _mkdir(path: Path, _outside: Path) -> None:
    path.mkdir()


def folder(files: dict[str, Writer]) -> Writer:
    """A folder job: ``files`` maps relative paths (``/``-separated) to their generators."""

    def make(path: Path, outside: Path) -> None:
        path.mkdir()
        for rel, write in files.items():
            target = path.joinpath(*rel.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            write(target, outside)

    return make


# -- the table ------------------------------------------------------------------------------

JPEG = _plain(_jpeg)
DEEP_50 = "/".join(["d"] * 50 + ["deep.png"])
DEPTH_8 = "/".join(["d"] * 7 + ["at8.png"])
DEPTH_9 = "/".join(["d"] * 8 + ["at9.png"])
CJK_DIR = "写" * 85  # 255 bytes of UTF-8
CJK_FILE = "真" * 83 + ".jpg"  # 253 bytes


@dataclass(frozen=True)
class Kind:
    """One kind of hostile input and exactly what must become of it."""

    kind: str
    name: str  # the inbox entry: a folder, or a loose file, link, pipe...
    make: Writer
    state: str  # "done", "failed", or "inbox" (ignored by rule: left where it was)
    code: str | None = None  # error.json code of a failed job
    rejected: tuple[tuple[str, str], ...] = ()  # (source, code) pairs in result.json
    images: tuple[str, ...] = ()  # sources that became splats
    ignored: tuple[str, ...] = ()  # names result.json lists as ignored clutter
    linux_only: bool = False  # needs a case- and normalisation-sensitive filesystem
    details: dict[str, Any] = field(default_factory=dict)  # expected error.json details
    said: tuple[tuple[str, str], ...] = ()  # (source, words its message in result.json holds)


NO_IMAGES = "no_valid_images"

# fmt: off
KINDS: tuple[Kind, ...] = (
    # Empty, truncated, damaged.
    Kind(
        "zero-byte file",
        "zero-byte",
        folder({"empty.jpg": _bytes(b"")}),
        "failed",
        NO_IMAGES,
        (("empty.jpg", "empty_file"),),
    ),
    Kind(
        "zero-byte loose file",
        "loose-empty.jpg",
        _bytes(b""),
        "failed",
        NO_IMAGES,
        (("loose-empty.jpg", "empty_file"),),
    ),
    Kind(
        "truncated JPEG",
        "truncated-jpeg",
        folder({"cut.jpg": _plain(corpus.write_truncated_jpeg)}),
        "failed",
        NO_IMAGES,
        (("cut.jpg", "decode_failed"),),
    ),
    Kind(
        "JPEG that is only its signature",
        "jpeg-signature",
        folder({"soi.jpg": _bytes(b"\xff\xd8\xff")}),
        "failed",
        NO_IMAGES,
        (("soi.jpg", "decode_failed"),),
    ),
    Kind(
        "PNG with a bad IHDR CRC",
        "png-bad-crc",
        folder({"crc.png": _plain(corpus.write_bad_crc_png)}),
        "failed",
        NO_IMAGES,
        (("crc.png", "decode_failed"),),
    ),
    Kind(
        "PNG with a bad IDAT CRC",
        "png-bad-idat-crc",
        folder({"idat.png": _plain(corpus.write_bad_idat_crc_png)}),
        "failed",
        NO_IMAGES,
        (("idat.png", "decode_failed"),),
    ),
    Kind(
        "PNG with only a header (no IDAT, no IEND)",
        "png-header-only",
        folder({"head.png": _plain(_png_header_only)}),
        "failed",
        NO_IMAGES,
        (("head.png", "decode_failed"),),
    ),
    Kind(
        "HEIC with a corrupted box (hvcC), still sniffed as HEIF",
        "heic-broken-box",
        folder({"broken.heic": _plain(_broken_heic)}),
        "failed",
        NO_IMAGES,
        (("broken.heic", "decode_failed"),),
    ),
    # Not images, whatever the name says.
    Kind(
        ".jpg that is really a PDF",
        "pdf-as-jpg",
        folder({"scan.jpg": _plain(corpus.write_pdf)}),
        "failed",
        NO_IMAGES,
        (("scan.jpg", "unsupported_type"),),
    ),
    Kind(
        "ZIP archive",
        "zip",
        folder({"photos.zip": _plain(corpus.write_zip)}),
        "failed",
        NO_IMAGES,
        (("photos.zip", "unsupported_type"),),
    ),
    Kind(
        "shell script",
        "script",
        folder({"run.sh": _plain(corpus.write_script)}),
        "failed",
        NO_IMAGES,
        (("run.sh", "unsupported_type"),),
    ),
    Kind(
        "text file named .png",
        "text-as-png",
        folder({"notes.png": _bytes(b"just some text\n")}),
        "failed",
        NO_IMAGES,
        (("notes.png", "unsupported_type"),),
    ),
    Kind(
        "GIF named .jpg",
        "gif-as-jpg",
        folder({"anim.jpg": _bytes(b"GIF89a" + b"\x00" * 32)}),
        "failed",
        NO_IMAGES,
        (("anim.jpg", "unsupported_type"),),
    ),
    Kind(
        "AVIF (ftyp carries mif1 too)",
        "avif",
        folder({"pic.avif": _bytes(_avif_bytes())}),
        "failed",
        NO_IMAGES,
        (("pic.avif", "unsupported_type"),),
    ),
    Kind(
        "loose non-image file",
        "notes.txt",
        _bytes(b"not a photo\n"),
        "failed",
        NO_IMAGES,
        (("notes.txt", "unsupported_type"),),
    ),
    Kind(
        "a good photo next to a fake one",
        "mixed",
        folder({"good.jpg": JPEG, "fake.jpg": _plain(corpus.write_pdf)}),
        "done",
        None,
        (("fake.jpg", "unsupported_type"),),
        images=("good.jpg",),
    ),
    # Too big.
    Kind(
        "PNG header declaring 100000×100000",
        "huge-header-png",
        folder({"huge.png": _plain(corpus.write_huge_header_png)}),
        "failed",
        NO_IMAGES,
        (("huge.png", "image_too_large"),),
        said=(("huge.png", "100000×100000"),),
    ),
    Kind(
        "JPEG frame header declaring 65500×65500",
        "huge-header-jpeg",
        folder({"huge.jpg": _plain(_huge_sof_jpeg)}),
        "failed",
        NO_IMAGES,
        (("huge.jpg", "image_too_large"),),
        said=(("huge.jpg", "65500×65500"),),
    ),
    Kind(
        "decompression bomb (20000×20000 1-bit PNG, ~35 KB)",
        "bomb",
        folder({"bomb.png": _plain(lambda p: corpus.write_bomb_png(p, 20000))}),
        "failed",
        NO_IMAGES,
        (("bomb.png", "image_too_large"),),
        said=(("bomb.png", "20000×20000"),),
    ),
    Kind(
        f"file over max_file_mb ({MAX_FILE_MB} MB)",
        "file-too-large",
        folder({"big.jpg": _padded_jpeg(3 * MB // 2)}),
        "failed",
        NO_IMAGES,
        (("big.jpg", "file_too_large"),),
    ),
    Kind(
        f"job over max_job_mb ({MAX_JOB_MB} MB, files under max_file_mb)",
        "job-too-large",
        folder({f"part{i}.jpg": _padded_jpeg(9 * MB // 10) for i in range(3)}),
        "failed",
        "job_too_large",
    ),
    Kind(
        "101 tiny images (max_images 100)",
        "too-many-images",
        folder({f"img{i:03}.png": _tiny_png(i) for i in range(101)}),
        "failed",
        "too_many_images",
        details={"images": 101, "max_images": 100},
    ),
    Kind(
        "image 50 folders deep (max_depth 8)",
        "nested-50",
        folder({DEEP_50: _tiny_png(1)}),
        "failed",
        "too_many_entries",
        details={"max_depth": 8},
    ),
    Kind(
        "image at depth 9 (one past max_depth)",
        "nested-9",
        folder({DEPTH_9: _tiny_png(2)}),
        "failed",
        "too_many_entries",
        details={"max_depth": 8},
    ),
    Kind(
        "image at depth 8 (exactly max_depth)",
        "nested-8",
        folder({DEPTH_8: _tiny_png(3)}),
        "done",
        images=(DEPTH_8,),
    ),
    # Not regular files: never followed, never opened.
    Kind(
        "symlink to a file outside the root",
        "symlink-outside",
        folder({"link.jpg": _symlink_outside}),
        "failed",
        NO_IMAGES,
        (("link.jpg", "not_regular_file"),),
    ),
    Kind(
        "loose symlink to a file outside the root",
        "loose-link.jpg",
        _symlink_outside,
        "failed",
        NO_IMAGES,
        (("loose-link.jpg", "not_regular_file"),),
    ),
    Kind(
        "loose symlink to a folder outside the root",
        "linked-folder",
        _symlink_outside_dir,
        "failed",
        NO_IMAGES,
        (("linked-folder", "not_regular_file"),),
    ),
    Kind(
        "symlink loop",
        "symlink-loop",
        folder({"a.jpg": _symlink_to("b.jpg"), "b.jpg": _symlink_to("a.jpg")}),
        "failed",
        NO_IMAGES,
        (("a.jpg", "not_regular_file"), ("b.jpg", "not_regular_file")),
    ),
    Kind(
        "dangling symlink",
        "symlink-dangling",
        folder({"gone.jpg": _symlink_to("/nonexistent/x.jpg")}),
        "failed",
        NO_IMAGES,
        (("gone.jpg", "not_regular_file"),),
    ),
    Kind(
        "FIFO in a folder",
        "fifo",
        folder({"pipe.jpg": _fifo}),
        "failed",
        NO_IMAGES,
        (("pipe.jpg", "not_regular_file"),),
    ),
    Kind(
        "loose FIFO", "loose-pipe.jpg", _fifo, "failed", NO_IMAGES, (("loose-pipe.jpg", "not_regular_file"),)
    ),
    Kind(
        "Unix socket",
        "unix-socket",
        folder({"sock.jpg": _unix_socket}),
        "failed",
        NO_IMAGES,
        (("sock.jpg", "not_regular_file"),),
    ),
    # Names.
    Kind(
        "folder named ..foo at the top of the inbox (a dot-name)", "..foo", folder({"a.jpg": JPEG}), "inbox"
    ),
    Kind("loose dot-file at the top of the inbox", ".hidden.jpg", JPEG, "inbox"),
    Kind(
        "photo named ..jpg (a dot-name inside a job)",
        "dotdot-file",
        folder({"..jpg": JPEG}),
        "failed",
        NO_IMAGES,
        ignored=("..jpg",),
    ),
    Kind(
        "iCloud placeholder of an evicted photo (.name.icloud, iCloud Drive's Optimise Mac Storage)",
        "icloud-evicted",
        folder({".IMG_0042.HEIC.icloud": _bytes(b'<?xml version="1.0"?><plist version="1.0"/>')}),
        "failed",
        NO_IMAGES,
        (("IMG_0042.HEIC", "not_downloaded"),),
        said=(("IMG_0042.HEIC", "Download Now"),),
    ),
    Kind(".. inside names", "a..b", folder({"x..y.jpg": JPEG}), "done", images=("x..y.jpg",)),
    Kind(
        "/-like Unicode (U+2215, U+FF0F) in names",
        "a\u2215b\uff0fc",
        folder({"d\u2215e\uff0ff.jpg": JPEG}),
        "done",
        images=("d\u2215e\uff0ff.jpg",),
    ),
    Kind(
        "newline, tab, ESC and other control characters in names",
        "line\nbreak\ttab\x01\x1b[31m",
        folder({"bell\x07\r\x7f.jpg": JPEG}),
        "done",
        images=("bell\x07\r\x7f.jpg",),
    ),
    Kind(
        "loose photo with a newline in its name",
        "loose\nnewline.jpg",
        JPEG,
        "done",
        images=("loose\nnewline.jpg",),
    ),
    Kind(
        "255-byte ASCII names",
        "L" * 255,
        folder({"F" * 251 + ".jpg": JPEG}),
        "done",
        images=("F" * 251 + ".jpg",),
    ),
    Kind("255-byte loose photo", "P" * 251 + ".jpg", JPEG, "done", images=("P" * 251 + ".jpg",)),
    Kind(
        "255-byte CJK names (3 bytes per character)",
        CJK_DIR,
        folder({CJK_FILE: JPEG}),
        "done",
        images=(CJK_FILE,),
    ),
    Kind(
        "NFD name (Cafe + U+0301)",
        "Cafe\u0301",
        folder({"Cafe\u0301.jpg": JPEG}),
        "done",
        images=("Cafe\u0301.jpg",),
    ),
    Kind(
        "NFC and NFD twins in one folder",
        "nfc-nfd-twins",
        folder({"Caf\u00e9.jpg": JPEG, "Cafe\u0301.jpg": JPEG}),
        "done",
        images=("Caf\u00e9.jpg", "Cafe\u0301.jpg"),
        linux_only=True,
    ),
    Kind(
        "names differing only in case",
        "case-twins",
        folder({"IMG.jpg": JPEG, "img.JPG": JPEG}),
        "done",
        images=("IMG.jpg", "img.JPG"),
        linux_only=True,
    ),
    Kind("whitespace-only name", "   ", folder({" .jpg": JPEG}), "done", images=(" .jpg",)),
    # Empty and clutter.
    Kind("empty folder", "empty-folder", _mkdir, "failed", NO_IMAGES),
    Kind(
        "folder with only junk",
        "junk-only",
        folder(
            {
                ".DS_Store": _bytes(b"\x00\x00\x00\x01Bud1"),
                "._x.jpg": JPEG,
                "__MACOSX/x.jpg": JPEG,
                "Thumbs.db": _bytes(b"\xd0\xcf\x11\xe0"),
                "desktop.ini": _bytes(b"[.ShellClassInfo]\n"),
            }
        ),
        "failed",
        NO_IMAGES,
        ignored=(".DS_Store", "._x.jpg", "Thumbs.db", "__MACOSX", "desktop.ini"),
    ),
    # Images people really have, named for what they are.
    Kind(
        "12-bit JPEG",
        "jpeg-12-bit",
        folder({"scan.jpg": _bytes(corpus.twelve_bit_jpeg())}),
        "failed",
        NO_IMAGES,
        (("scan.jpg", "decode_failed"),),
        said=(("scan.jpg", "12-bit JPEG"), ("scan.jpg", "8-bit JPEG, PNG or HEIC")),
    ),
    Kind(
        "DNG raw file",
        "dng",
        folder({"IMG_0001.DNG": _plain(corpus.write_dng)}),
        "failed",
        NO_IMAGES,
        (("IMG_0001.DNG", "unsupported_type"),),
        said=(("IMG_0001.DNG", "RAW"),),
    ),
    Kind(
        "PNG with a bad checksum on its text comment only",
        "png-bad-text-crc",
        folder({"scan.png": _bytes(corpus.png_with_text(bad_crc_on=b"tEXt")[0])}),
        "done",
        images=("scan.png",),
    ),
    Kind(
        "photos whose names start with a dash",
        "dash-names",
        folder({"-n.jpg": JPEG, "-rf --help.jpg": JPEG}),
        "done",
        images=("-n.jpg", "-rf --help.jpg"),
    ),
    # job.toml.
    Kind(
        "a job.toml dropped on its own",
        "job.toml",
        _bytes(b"priority = 1\n"),
        "failed",
        NO_IMAGES,
        (("job.toml", "unsupported_type"),),
        said=(("job.toml", "folder"),),
    ),
    Kind(
        "job.toml with f_px = nan",
        "toml-nan",
        folder({"p.jpg": JPEG, "job.toml": _bytes(b"f_px = nan\n")}),
        "failed",
        "invalid_job_toml",
        details={"problem": "'f_px' must be a number from 1 to 1e+06, got nan; e.g. f_px = 1450.0"},
    ),
    Kind(
        "job.toml saved with a UTF-8 byte-order mark",
        "toml-bom",
        folder({"p.jpg": JPEG, "job.toml": _bytes(b"\xef\xbb\xbfpriority = 2\n")}),
        "done",
        images=("p.jpg",),
    ),
    Kind(
        "job.toml that is not TOML",
        "toml-invalid",
        folder({"p.jpg": JPEG, "job.toml": _bytes(b"priority = = 3\n[[\n")}),
        "failed",
        "invalid_job_toml",
    ),
    Kind(
        "job.toml with an unknown key",
        "toml-unknown-key",
        folder({"p.jpg": JPEG, "job.toml": _bytes(b"priority = 1\nrm_rf = true\n")}),
        "failed",
        "invalid_job_toml",
        details={"problem": "unknown key 'rm_rf' (known: priority, f_px, formats, video_frames)"},
    ),
    Kind(
        "job.toml with wrong types",
        "toml-wrong-types",
        folder({"p.jpg": JPEG, "job.toml": _bytes(b'f_px = "wide"\n')}),
        "failed",
        "invalid_job_toml",
    ),
    Kind(
        "job.toml that is not UTF-8",
        "toml-not-utf8",
        folder({"p.jpg": JPEG, "job.toml": _bytes(b"priority = 1 # \xff\xfe\n")}),
        "failed",
        "invalid_job_toml",
    ),
    Kind(
        "job.toml that is a folder",
        "toml-folder",
        folder({"p.jpg": JPEG, "job.toml": _mkdir}),
        "failed",
        "invalid_job_toml",
    ),
    Kind(
        "job.toml that is a FIFO",
        "toml-fifo",
        folder({"p.jpg": JPEG, "job.toml": _fifo}),
        "failed",
        "invalid_job_toml",
    ),
    Kind(
        "job.toml that is a symlink to a valid file outside",
        "toml-symlink",
        folder({"p.jpg": JPEG, "job.toml": _symlink_outside_toml}),
        "failed",
        "invalid_job_toml",
    ),
    # Unusual but valid.
    Kind(
        "JPEG with garbage EXIF",
        "garbage-exif",
        folder({"exif.jpg": _plain(_garbage_exif_jpeg)}),
        "done",
        images=("exif.jpg",),
    ),
    Kind(
        "16-bit grayscale PNG",
        "png16-gray",
        folder({"g16.png": _plain(_png16_gray)}),
        "done",
        images=("g16.png",),
    ),
    Kind(
        "16-bit RGB PNG",
        "png16-rgb",
        folder({"rgb16.png": _plain(_png16_rgb)}),
        "done",
        images=("rgb16.png",),
    ),
    Kind(
        "1×1 pixel PNG",
        "one-pixel",
        folder({"dot.png": _plain(lambda p: corpus.write_png(p, np.array([[[40, 90, 160]]], np.uint8)))}),
        "done",
        images=("dot.png",),
    ),
)


def active_kinds() -> list[Kind]:
    return [k for k in KINDS if LINUX or not k.linux_only]


# -- observing the tree without following or opening anything but regular files ----------


def sha(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def snapshot(path: Path, skip: Callable[[str], bool] = lambda _name: False) -> dict[str, tuple[str, str]]:
    """``rel -> (type, detail)`` for ``path`` and everything under it: a file's sha256, a link's
    target; never follows a link, never opens a FIFO or socket."""
    out: dict[str, tuple[str, str]] = {}

    def visit(p: Path, rel: str) -> None:
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(p))
        elif stat.S_ISREG(st.st_mode):
            out[rel] = ("file", sha(p))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", "")
            for name in sorted(os.listdir(p)):
                if not (rel == "" and skip(name)):
                    visit(p / name, f"{rel}/{name}" if rel else name)
        elif stat.S_ISFIFO(st.st_mode):
            out[rel] = ("fifo", "")
        elif stat.S_ISSOCK(st.st_mode):
            out[rel] = ("socket", "")
        else:
            out[rel] = ("other", oct(st.st_mode))

    visit(path, "")
    return out


def job_input(job: Path, kind: Kind) -> Path:
    """Where the original is kept: the folder itself, or ``input/<name>`` for a loose entry."""
    record = json.loads((job / "job.json").read_text())
    return job / "input" if record["source"] == "folder" else job / "input" / kind.name


# -- the test ---------------------------------------------------------------------------------


def test_hostile_corpus_in_one_burst(
    root: Path, checkpoint: Path, tmp_path: Path, daemons: list[Daemon]
) -> None:
    harness.write_config(root, checkpoint, limits={"max_file_mb": MAX_FILE_MB, "max_job_mb": MAX_JOB_MB})
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    corpus.write_jpeg(outside / "target.jpg")
    corpus.write_jpeg(outside / "folder" / "inside.jpg")
    (outside / "job.toml").write_text("priority = 1\n")
    target_stat = os.stat(outside / "target.jpg")

    kinds = active_kinds()
    assert len({k.name for k in kinds}) == len(kinds)
    assert len(kinds) >= 30
    inbox = root / "inbox"
    inbox.mkdir(parents=True)
    originals: dict[str, dict[str, tuple[str, str]]] = {}
    for kind in kinds:
        kind.make(inbox / kind.name, outside)
        originals[kind.name] = snapshot(inbox / kind.name)

    def around_root(name: str) -> bool:
        return name == root.name or (name.startswith("daemon-") and name.endswith(".log"))

    parent_before = snapshot(tmp_path, skip=around_root)

    started = time.monotonic()
    d = Daemon(root, "--burst")
    daemons.append(d)
    try:
        code = d.wait(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the burst daemon did not finish\n{d.text()[-5000:]}")
    elapsed = time.monotonic() - started
    assert code == 0, d.text()[-5000:]
    assert not d.logged("internal error in the daemon loop"), d.text()[-5000:]

    # Nothing in flight, every job in exactly one place, nothing left but the ignored kinds.
    assert not list((root / "working").iterdir())
    done, failed = jobs(root, "done"), jobs(root, "failed")
    assert not {p.name for p in done} & {p.name for p in failed}
    by_name: dict[str, list[tuple[str, Path]]] = {}
    for state, folder_ in (("done", done), ("failed", failed)):
        for job in folder_:
            assert is_job_id(job.name), job.name
            result = json.loads((job / "result.json").read_text())
            assert result["job_id"] == job.name
            by_name.setdefault(result["original_name"], []).append((state, job))
    expected_in_inbox = sorted(k.name for k in kinds if k.state == "inbox")
    assert sorted(os.listdir(inbox)) == expected_in_inbox
    assert sorted(by_name) == sorted(k.name for k in kinds if k.state != "inbox")

    problems: list[str] = []
    for kind in kinds:
        problems += check_kind(kind, by_name.get(kind.name, []), inbox, originals[kind.name])
    assert not problems, "\n".join(problems)

    # Outside the root: nothing created, nothing changed, the symlinks' target untouched.
    assert snapshot(tmp_path, skip=around_root) == parent_before
    after = os.stat(outside / "target.jpg")
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        target_stat.st_size,
        target_stat.st_mtime_ns,
        target_stat.st_ino,
    )
    print(f"{len(kinds)} kinds, daemon run {elapsed:.1f} s")


def check_kind(
    kind: Kind, found: list[tuple[str, Path]], inbox: Path, original: dict[str, tuple[str, str]]
) -> list[str]:
    """Everything that is wrong with one kind's outcome (empty when it is exactly as stated)."""
    label = f"{kind.kind} ({kind.name!r})"
    if kind.state == "inbox":
        if found:
            return [f"{label}: expected to be ignored, but became {found}"]
        if snapshot(inbox / kind.name) != original:
            return [f"{label}: changed while ignored in the inbox"]
        return []
    if len(found) != 1:
        return [f"{label}: expected exactly one job, found {found}"]
    state, job = found[0]
    out: list[str] = []
    result = json.loads((job / "result.json").read_text())
    if state != kind.state or result["status"] != kind.state:
        error = result.get("error") or {}
        out.append(
            f"{label}: ended {state} ({error.get('code')}: {error.get('message')}), expected {kind.state}"
        )
    got_rejected = sorted((r["source"], r["code"]) for r in result["rejected"])
    if got_rejected != sorted(kind.rejected):
        out.append(f"{label}: rejected {got_rejected}, expected {sorted(kind.rejected)}")
    got_images = sorted(i["source"] for i in result["images"])
    if got_images != sorted(kind.images):
        out.append(f"{label}: images {got_images}, expected {sorted(kind.images)}")
    if sorted(result["ignored"]) != sorted(kind.ignored):
        out.append(f"{label}: ignored {result['ignored']}, expected {sorted(kind.ignored)}")
    for image in result["images"]:
        for fmt in ("ply", "splat"):
            path = job / image["outputs"][fmt]["path"]
            if path.parent != job or not path.is_file():
                out.append(f"{label}: missing or misplaced output {path}")
            if path.name.startswith(("-", ".")):
                out.append(f"{label}: output {path.name!r} would read as an option or be hidden")
    messages = {r["source"]: r["message"] for r in result["rejected"]}
    for source, words in kind.said:
        if words not in messages.get(source, ""):
            out.append(f"{label}: {source}'s message {messages.get(source)!r} does not say {words!r}")
    if state == "failed":
        error = json.loads((job / "error.json").read_text())
        text = (job / "ERROR.txt").read_text() if (job / "ERROR.txt").is_file() else ""
        if error["code"] != kind.code:
            out.append(f"{label}: code {error['code']!r} ({error['message']}), expected {kind.code!r}")
        if error["original_name"] != kind.name or error["job_id"] != job.name:
            out.append(f"{label}: error.json names {error['original_name']!r} / {error['job_id']!r}")
        if f"Error code: {kind.code}" not in text:
            out.append(f"{label}: ERROR.txt is missing or does not give the code")
        for key, value in kind.details.items():
            if error["details"].get(key) != value:
                out.append(f"{label}: error.json details[{key!r}] = {error['details'].get(key)!r}")
    elif (job / "error.json").exists() or (job / "ERROR.txt").exists():
        out.append(f"{label}: a done job holds error files")
    if snapshot(job_input(job, kind)) != original:
        out.append(f"{label}: the original is not intact in {job_input(job, kind)}")
    return out


# -- known bugs: each test states the right behaviour and fails until the bug is fixed -------


def _burst(root: Path, daemons: list[Daemon], timeout: float) -> Daemon:
    d = Daemon(root, "--burst")
    daemons.append(d)
    try:
        code = d.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the burst daemon did not finish in {timeout:g} s\n{d.text()[-3000:]}")
    assert code == 0, d.text()[-3000:]
    return d


def test_ignored_top_level_names_do_not_keep_a_burst_daemon_running(
    root: Path, daemons: list[Daemon]
) -> None:
    inbox = root / "inbox"
    (inbox / "trip").mkdir(parents=True)
    corpus.write_jpeg(inbox / "trip" / "a.jpg")
    clutter = {"Thumbs.db": b"\xd0\xcf\x11\xe0", "desktop.ini": b"[x]\n", "movie.mp4.part": b"\x00" * 10}
    for name, data in clutter.items():
        (inbox / name).write_bytes(data)
    _burst(root, daemons, timeout=60)
    assert len(jobs(root, "done")) == 1
    assert sorted(os.listdir(inbox)) == sorted(clutter)


@pytest.mark.skipif(not LINUX, reason="needs a filesystem that stores names as bytes")
def test_non_utf8_file_name_inside_a_job(root: Path, daemons: list[Daemon]) -> None:
    job = root / "inbox" / "bytes-inside"
    job.mkdir(parents=True)
    name = os.fsdecode(b"photo-\xff\xfe.jpg")
    corpus.write_jpeg(job / name)
    before = snapshot(job)
    d = _burst(root, daemons, timeout=60)
    assert not d.logged("internal error in the daemon loop")
    (done,) = jobs(root, "done")
    result = json.loads((done / "result.json").read_text())
    assert len(result["images"]) == 1
    assert snapshot(done / "input") == before


@pytest.mark.skipif(not LINUX, reason="needs a filesystem that stores names as bytes")
def test_non_utf8_folder_name_is_claimed(root: Path, daemons: list[Daemon]) -> None:
    job = root / "inbox" / os.fsdecode(b"folder-\xff")
    job.mkdir(parents=True)
    corpus.write_jpeg(job / "a.jpg")
    d = _burst(root, daemons, timeout=60)
    assert not d.logged("internal error in the daemon loop")
    assert len(jobs(root, "done")) == 1
