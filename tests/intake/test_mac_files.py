"""Files macOS leaves in a dropped folder: iCloud placeholders and Finder copies in progress.

No Mac runs these tests. The iCloud placeholder follows iCloud Drive's documented "Optimise
Mac Storage" behaviour (an evicted ``name`` becomes a hidden ``.name.icloud`` plist). The
Finder markers follow Apple's File Manager reference (``kMagicBusyCreationDate`` and the
``brok``/``MACS`` type/creator in Files.h) and RFC 1740 (AppleSingle/AppleDouble): a real
AppleDouble ``._name`` file is written to disk, and the birth time and xattr a Mac would
report are injected through :class:`FinderMarks`.
"""

from __future__ import annotations

import datetime
import struct
from pathlib import Path

from sharpmld.core.errors import NoValidImages
from sharpmld.core.macos import FinderMarks, appledouble_finder_info
from sharpmld.core.units import MB
from sharpmld.daemon.held import held_message
from sharpmld.daemon.report import error_text
from sharpmld.intake.inventory import inventory
from sharpmld.intake.names import is_in_progress
from sharpmld.intake.scanner import InboxScanner

from . import corpus

LIMITS: dict[str, int] = {"max_file_bytes": 20 * MB, "max_job_bytes": 500 * MB, "max_images": 100}
BUSY_DATE = datetime.datetime(1946, 2, 14, 8, 34, 56, tzinfo=datetime.UTC).timestamp()
PLIST = b'<?xml version="1.0"?><plist version="1.0"><dict><key>NSURLNameKey</key></dict></plist>'


def finder_info(type_: bytes, creator: bytes) -> bytes:
    """A 32-byte FinderInfo: FInfo (type, creator, flags, location, folder) then FXInfo."""
    return type_ + creator + bytes(24)


def appledouble(info: bytes) -> bytes:
    """An AppleDouble header file as RFC 1740 lays it out, with a Finder Info entry (id 9)
    after a resource-fork entry (id 2), so the parser must walk the entry table."""
    header = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", 2)
    first = len(header) + 2 * 12
    table = struct.pack(">III", 2, first + len(info), 0) + struct.pack(">III", 9, first, len(info))
    return header + table + info


def test_an_icloud_placeholder_is_rejected_under_its_real_name(tmp_path: Path) -> None:
    corpus.write_jpeg(tmp_path / "a.jpg")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".IMG_0042.HEIC.icloud").write_bytes(PLIST)
    (tmp_path / ".DS_Store").write_bytes(b"x")
    found = inventory(tmp_path, **LIMITS)
    assert [c.rel for c in found.images] == ["a.jpg"]
    assert [(r.rel, r.code) for r in found.rejected] == [("sub/IMG_0042.HEIC", "not_downloaded")]
    message = found.rejected[0].message
    assert "IMG_0042.HEIC" in message and ".icloud" not in message
    assert "Download Now" in message and "brctl download" in message
    assert found.ignored == [".DS_Store"]


def test_a_folder_of_placeholders_only_says_in_error_txt_to_download_them(tmp_path: Path) -> None:
    for name in ("trip.jpg", "beach.HEIC"):
        (tmp_path / f".{name}.icloud").write_bytes(PLIST)
    found = inventory(tmp_path, **LIMITS)
    assert found.images == [] and found.ignored == []
    rejected = [{"source": r.rel, "code": r.code, "message": r.message} for r in found.rejected]
    text = error_text(NoValidImages(), "job1", "holiday", rejected, found.ignored)
    assert "beach.HEIC: beach.HEIC is in iCloud Drive but not downloaded" in text
    assert "trip.jpg: trip.jpg is in iCloud Drive but not downloaded" in text
    assert text.count("Download Now") == 2  # once per file, not repeated elsewhere


def test_appledouble_finder_info_is_read_from_its_entry_table() -> None:
    info = finder_info(b"brok", b"MACS")
    assert appledouble_finder_info(appledouble(info)) == info
    assert appledouble_finder_info(b"\x00\x05\x16\x00" + appledouble(info)[4:]) is None  # bad magic
    assert appledouble_finder_info(appledouble(info)[:30]) is None  # truncated table


def test_an_appledouble_busy_file_holds_the_folder_until_finder_is_done(tmp_path: Path) -> None:
    scanner = InboxScanner(tmp_path, settle=1.0, marker="", max_entries=1000, in_progress_hold=5.0)
    job = tmp_path / "usb"
    job.mkdir()
    corpus.write_jpeg(job / "a.jpg")
    corpus.write_jpeg(job / "b.jpg")
    (job / "._b.jpg").write_bytes(appledouble(finder_info(b"brok", b"MACS")))
    assert scanner.scan(0.0) == []
    for now in (2.0, 60.0, 10_000.0):  # unlike a temp name, a stale marker is never taken
        assert scanner.scan(now) == []
    (held,) = scanner.held_back()
    assert (held.name, held.reason, held.path, held.due) == ("usb", "finder_copying", "usb/b.jpg", None)
    assert held_message(held, scanner).startswith("Finder is still copying usb/b.jpg")
    (job / "._b.jpg").write_bytes(appledouble(finder_info(b"JPEG", b"prvw")))  # the copy ended
    assert scanner.scan(10_001.0) == []  # the tree changed: it settles again first
    assert [e.name for e in scanner.scan(10_002.0)] == ["usb"]
    assert scanner.held_back() == []


def test_the_busy_birth_time_or_xattr_holds_a_folder_or_a_lone_file(tmp_path: Path) -> None:
    born: dict[str, float] = {}
    xattrs: dict[str, bytes] = {}
    marks = FinderMarks(birthtime=born.get, finder_info=xattrs.get)
    scanner = InboxScanner(tmp_path, settle=0.0, marker="", max_entries=1000, marks=marks)
    (tmp_path / "apfs").mkdir()
    photo = corpus.write_jpeg(tmp_path / "apfs" / "a.jpg")
    lone = corpus.write_jpeg(tmp_path / "lone.jpg")
    born[str(photo)] = BUSY_DATE + 0.25  # APFS keeps nanoseconds; the busy date is whole seconds
    xattrs[str(lone)] = finder_info(b"brok", b"MACS")
    assert scanner.scan(0.0) == []
    assert {(h.name, h.path) for h in scanner.held_back()} == {
        ("apfs", "apfs/a.jpg"),
        ("lone.jpg", "lone.jpg"),
    }
    born[str(photo)] = BUSY_DATE + 86_400  # Finder set the real creation date at the end
    xattrs[str(lone)] = finder_info(b"JPEG", b"MACS")
    assert sorted(e.name for e in scanner.scan(1.0)) == ["apfs", "lone.jpg"]


def test_a_placeholder_is_not_taken_for_an_rsync_temp_file_and_its_folder_settles(tmp_path: Path) -> None:
    """``.IMG_0042.HEIC.icloud`` fits rsync's ``.name.XXXXXX``; held as a copy in progress, a
    folder of placeholders waited two minutes before it was claimed and told to download."""
    assert not is_in_progress(".IMG_0042.HEIC.icloud")
    assert is_in_progress(".IMG_0042.HEIC.a1B2c3")  # a real rsync temp name still is
    inbox = tmp_path / "inbox"
    (inbox / "evicted").mkdir(parents=True)
    (inbox / "evicted" / ".IMG_0042.HEIC.icloud").write_bytes(b"<plist/>")
    scanner = InboxScanner(inbox, settle=5.0, marker="", max_entries=100)
    assert scanner.scan(0.0) == []
    assert [e.name for e in scanner.scan(6.0)] == ["evicted"]
