"""Files macOS leaves in a dropped folder: iCloud placeholders and Finder copies in progress.

No Mac runs these tests. The iCloud placeholder follows iCloud Drive's documented "Optimise
Mac Storage" behaviour (an evicted ``name`` becomes a hidden ``.name.icloud`` plist). The
Finder markers follow Apple's File Manager reference (``kMagicBusyCreationDate`` and the
``brok``/``MACS`` type/creator in Files.h) and RFC 1740 (AppleSingle/AppleDouble): a real
AppleDouble ``._name`` file is written to disk, and the birth time and xattr a Mac would
report are injected through :class:`FinderMarks`.
"""

from __future__ import annotations

from pathlib import Path

from sharpmld.core.errors import NoValidImages
from sharpmld.core.units import MB
from sharpmld.daemon.report import error_text
from sharpmld.intake.inventory import inventory

from . import corpus

LIMITS: dict[str, int] = {"max_file_bytes": 20 * MB, "max_job_bytes": 500 * MB, "max_images": 100}
PLIST = b'<?xml version="1.0"?><plist version="1.0"><dict><key>NSURLNameKey</key></dict></plist>'


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
