"""Inspection in the daemon: names, sizes and magic bytes; never a decode, link or pipe."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sharpmld.core.errors import JobTooLarge, TooManyEntries, TooManyImages
from sharpmld.core.units import MB
from sharpmld.intake import inventory as insp
from sharpmld.intake.inventory import Inventory, inventory
from sharpmld.intake.magic import sniff
from sharpmld.intake.names import is_in_progress, is_junk
from sharpmld.intake.walk import tree_signature

from . import corpus

LIMITS: dict[str, int] = {"max_file_bytes": 20 * MB, "max_job_bytes": 500 * MB, "max_images": 100}


def inv(root: Path, **over: int) -> Inventory:
    return inventory(root, **{**LIMITS, **over})


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every path that os.open is asked for (names are relative when a dir_fd is used)."""
    seen: list[str] = []
    real = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        seen.append(os.fsdecode(path))
        return real(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", spy)
    yield seen


@pytest.mark.parametrize(
    ("name", "junk"),
    [
        (".DS_Store", True),
        ("._IMG_0001.jpg", True),
        ("__MACOSX", True),
        ("Thumbs.db", True),
        ("thumbs.db", True),
        ("desktop.ini", True),
        ("Icon\r", True),
        (".hidden", True),
        ("IMG_0001.jpg", False),
        ("Icon", False),
        ("photo.DS_Store.jpg", False),
    ],
)
def test_is_junk(name: str, junk: bool) -> None:
    assert is_junk(name) is junk


@pytest.mark.parametrize(
    ("name", "partial"),
    [
        (".IMG_0001.jpg.a1B2c3", True),  # rsync
        ("IMG.jpg.part", True),
        ("IMG.jpg.crdownload", True),
        ("IMG.jpg.download", True),
        ("IMG.jpg.TMP", True),
        ("IMG.jpg.partial", True),
        ("IMG.jpg", False),
        (".DS_Store", False),
        (".IMG.jpg.abc", False),  # suffix too short for rsync
        ("IMG.jpg.a1B2c3", False),  # rsync temps start with a dot
        ("party.jpg", False),
    ],
)
def test_is_in_progress(name: str, partial: bool) -> None:
    assert is_in_progress(name) is partial


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", "png"),
        (ftyp(b"heic", b"mif1", b"heic"), "heif"),
        (ftyp(b"mif1", b"heic"), "heif"),
        (ftyp(b"msf1", b"hevc"), "heif"),
        (ftyp(b"heix"), "heif"),
        (ftyp(b"avif", b"mif1", b"miaf"), None),
        (ftyp(b"mif1", b"avif"), None),  # an AVIF with mif1 first must not pass as HEIC
        (ftyp(b"isom", b"mp41"), "video"),  # an MP4 video: turned into frames
        (b"%PDF-1.4", None),
        (b"PK\x03\x04", None),
        (b"\xff\xd8", None),
        (b"", None),
    ],
)
def test_sniff(head: bytes, kind: str | None) -> None:
    assert sniff(head) == kind


def test_sniff_real_files(tmp_path: Path) -> None:
    assert sniff(corpus.write_heic(tmp_path / "a.heic").read_bytes()[:32]) == "heif"
    assert sniff(corpus.write_avif(tmp_path / "a.avif").read_bytes()[:32]) is None
    assert sniff(corpus.write_jpeg(tmp_path / "a.jpg").read_bytes()[:32]) == "jpeg"


def test_inventory_sorts_and_classifies(tmp_path: Path) -> None:
    corpus.write_png(tmp_path / "b.png")
    corpus.write_jpeg(tmp_path / "a.JPG")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    corpus.write_heic(tmp_path / "sub" / "deeper" / "c.heic")
    corpus.write_jpeg(tmp_path / "sub 2.jpg")
    corpus.write_empty(tmp_path / "empty.jpg")
    corpus.write_pdf(tmp_path / "doc.jpg")
    corpus.write_zip(tmp_path / "zip.jpg")
    corpus.write_script(tmp_path / "run.jpg")
    (tmp_path / "job.toml").write_text('name = "x"\n')
    (tmp_path / "sub" / "job.toml").write_text('name = "x"\n')
    ignored = corpus.write_junk(tmp_path)
    (tmp_path / "IMG.jpg.part").write_bytes(b"\xff\xd8\xff")

    result = inv(tmp_path)

    assert [(c.rel, c.kind) for c in result.images] == [
        ("a.JPG", "jpeg"),
        ("b.png", "png"),
        ("sub 2.jpg", "jpeg"),
        ("sub/deeper/c.heic", "heif"),
    ]
    assert result.images[3].path == tmp_path / "sub" / "deeper" / "c.heic"
    assert result.total_bytes == sum(c.path.stat().st_size for c in result.images)
    codes = {r.rel: r.code for r in result.rejected}
    assert codes == {
        "doc.jpg": "unsupported_type",
        "empty.jpg": "empty_file",
        "run.jpg": "unsupported_type",
        "sub/job.toml": "unsupported_type",  # only the top-level job.toml is settings
        "zip.jpg": "unsupported_type",
    }
    assert [r.rel for r in result.rejected] == sorted(codes)
    messages = {r.rel: r.message for r in result.rejected}
    assert "PDF" in messages["doc.jpg"] and "ZIP" in messages["zip.jpg"]
    assert "script" in messages["run.jpg"] and "JPEG, PNG and HEIC" in messages["run.jpg"]
    assert sorted(result.ignored) == sorted([*ignored, ".hidden", "IMG.jpg.part"])
    assert result.ignored == sorted(result.ignored)
    assert all(r != "job.toml" for r in result.ignored)


def test_junk_folders_not_descended(tmp_path: Path, opened: list[str]) -> None:
    corpus.write_junk(tmp_path)
    result = inv(tmp_path)
    assert result.images == [] and result.rejected == []
    assert not any(name in ("__MACOSX", ".hidden") for name in opened)


def test_too_large_file_is_not_opened(tmp_path: Path, opened: list[str]) -> None:
    big = tmp_path / "big.jpg"
    corpus.write_jpeg(big)
    with open(big, "ab") as f:
        f.truncate(2 * MB + 1)
    (result,) = inv(tmp_path, max_file_bytes=2 * MB).rejected
    assert (result.code, result.rel) == ("file_too_large", "big.jpg")
    assert "2 MB" in result.message
    assert "big.jpg" not in opened


@pytest.mark.timeout(10)
def test_fifo_never_opened(tmp_path: Path, opened: list[str]) -> None:
    corpus.write_fifo(tmp_path / "pipe.jpg")
    corpus.write_jpeg(tmp_path / "ok.jpg")
    result = inv(tmp_path)
    assert [(r.rel, r.code) for r in result.rejected] == [("pipe.jpg", "not_regular_file")]
    assert [c.rel for c in result.images] == ["ok.jpg"]
    assert "pipe.jpg" not in opened


@pytest.mark.timeout(10)
def test_fifo_swapped_in_after_lstat_does_not_block(tmp_path: Path) -> None:
    """The lstat said 'regular file', but a FIFO is there by the time we open it."""
    regular = os.lstat(corpus.write_jpeg(tmp_path / "real.jpg"))
    corpus.write_fifo(tmp_path / "pipe.jpg")
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        got = insp._classify("pipe.jpg", "pipe.jpg", regular, fd, tmp_path, 20 * MB)
    finally:
        os.close(fd)
    assert isinstance(got, insp.Rejection) and got.code == "not_regular_file"


def test_symlink_swapped_in_after_lstat_is_refused(tmp_path: Path, opened: list[str]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = corpus.write_jpeg(outside / "target.jpg")
    job = tmp_path / "job"
    job.mkdir()
    (job / "link.jpg").symlink_to(target)
    fd = os.open(job, os.O_RDONLY)
    try:
        got = insp._classify("link.jpg", "link.jpg", os.lstat(target), fd, job, 20 * MB)
    finally:
        os.close(fd)
    assert isinstance(got, insp.Rejection) and got.code == "not_regular_file"
    assert not any("target" in p for p in opened)


def test_symlinks_not_followed(tmp_path: Path, opened: list[str]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = corpus.write_jpeg(outside / "secret.jpg")
    job = tmp_path / "job"
    job.mkdir()
    (job / "link.jpg").symlink_to(target)
    (job / "linkdir").symlink_to(outside, target_is_directory=True)
    (job / "dangling.jpg").symlink_to(tmp_path / "nothing")
    result = inv(job)
    assert result.images == []
    assert {(r.rel, r.code) for r in result.rejected} == {
        ("dangling.jpg", "not_regular_file"),
        ("link.jpg", "not_regular_file"),
        ("linkdir", "not_regular_file"),
    }
    assert opened == [str(job)]  # the job folder itself; no link, no target


def test_socket_rejected(tmp_path: Path) -> None:
    path = tmp_path / "s.jpg"
    if len(os.fsencode(path)) > 100:
        pytest.skip("temporary path too long for a UNIX socket")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        (rejection,) = inv(tmp_path).rejected
    assert rejection.code == "not_regular_file"


def test_plain_file_root(tmp_path: Path) -> None:
    photo = corpus.write_jpeg(tmp_path / "one.jpg")
    result = inv(photo)
    assert [(c.rel, c.path) for c in result.images] == [("one.jpg", photo)]
    link = tmp_path / "link.jpg"
    link.symlink_to(photo)
    assert [r.code for r in inv(link).rejected] == ["not_regular_file"]


def test_too_many_entries(tmp_path: Path) -> None:
    for i in range(6):
        (tmp_path / f"f{i}.txt").write_bytes(b"x")
    inv(tmp_path, max_entries=6)
    with pytest.raises(TooManyEntries) as info:
        inv(tmp_path, max_entries=5)
    assert info.value.code == "too_many_entries"


def test_depth_limit(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*"abc")
    deep.mkdir(parents=True)
    corpus.write_jpeg(deep / "x.jpg")  # depth 4: a/b/c/x.jpg
    assert len(inv(tmp_path, max_depth=4).images) == 1
    with pytest.raises(TooManyEntries):
        inv(tmp_path, max_depth=3)


def test_deep_junk_is_not_counted(tmp_path: Path) -> None:
    deep = tmp_path.joinpath("__MACOSX", *"abcdefghij")
    deep.mkdir(parents=True)
    (deep / "x").write_bytes(b"x")
    corpus.write_jpeg(tmp_path / "ok.jpg")
    assert len(inv(tmp_path, max_depth=2, max_entries=3).images) == 1


def test_job_too_large(tmp_path: Path) -> None:
    sizes = [corpus.write_jpeg(tmp_path / f"{i}.jpg").stat().st_size for i in range(3)]
    assert inv(tmp_path, max_job_bytes=sum(sizes)).total_bytes == sum(sizes)
    with pytest.raises(JobTooLarge) as info:
        inv(tmp_path, max_job_bytes=sum(sizes) - 1)
    assert info.value.code == "job_too_large" and "MB" in info.value.message


def test_too_many_images(tmp_path: Path) -> None:
    for i in range(3):
        corpus.write_png(tmp_path / f"{i}.png")
    corpus.write_pdf(tmp_path / "not-counted.jpg")
    assert len(inv(tmp_path, max_images=3).images) == 3
    with pytest.raises(TooManyImages) as info:
        inv(tmp_path, max_images=2)
    assert "2 images" in info.value.message


def test_daemon_module_never_imports_a_decoder() -> None:
    code = (
        "import sys, sharpmld.intake.inventory, sharpmld.intake.walk; "
        "bad = [m for m in ('PIL', 'pillow_heif', 'numpy') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_signature_changes_when_file_grows_or_is_renamed(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    photo = corpus.write_jpeg(tmp_path / "sub" / "a.jpg")
    first = tree_signature(tmp_path, 100)
    assert first == tree_signature(tmp_path, 100) and hash(first) == hash(tree_signature(tmp_path, 100))
    assert not first.in_progress and not first.truncated
    with open(photo, "ab") as f:
        f.write(b"more")
    grown = tree_signature(tmp_path, 100)
    assert grown != first
    photo.rename(tmp_path / "sub" / "b.jpg")
    renamed = tree_signature(tmp_path, 100)
    assert renamed != grown
    assert [e[0] for e in renamed.entries] == ["sub", "sub/b.jpg"]


def test_signature_sees_mtime_and_in_progress(tmp_path: Path) -> None:
    photo = corpus.write_jpeg(tmp_path / "a.jpg")
    first = tree_signature(tmp_path, 100)
    st = photo.stat()
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert tree_signature(tmp_path, 100) != first
    (tmp_path / ".a.jpg.Xy12Z9").write_bytes(b"\xff")
    assert tree_signature(tmp_path, 100).in_progress
    os.remove(tmp_path / ".a.jpg.Xy12Z9")
    (tmp_path / "b.jpg.crdownload").write_bytes(b"\xff")
    assert tree_signature(tmp_path, 100).in_progress


def test_signature_is_cheap_and_bounded(tmp_path: Path, opened: list[str]) -> None:
    for i in range(5):
        corpus.write_jpeg(tmp_path / f"{i}.jpg")
    (tmp_path / "link").symlink_to(tmp_path / "0.jpg")
    opened.clear()
    sig = tree_signature(tmp_path, 100)
    assert opened == [str(tmp_path)]  # only the folder itself, never a file
    assert ("link", "symlink") in {(e[0], e[1]) for e in sig.entries}
    small = tree_signature(tmp_path, 3)
    assert small.truncated and len(small.entries) == 3


def test_signature_of_plain_file_and_missing_root(tmp_path: Path) -> None:
    photo = corpus.write_jpeg(tmp_path / "one.jpg.part")
    sig = tree_signature(photo, 10)
    assert [e[:3] for e in sig.entries] == [("one.jpg.part", "file", photo.stat().st_size)]
    assert sig.in_progress
    assert tree_signature(tmp_path / "gone", 10).entries == ()
