"""fsio on Apple file systems, played on Linux with injected fakes.

The fakes follow documented behaviour: F_FULLFSYNC from Apple's fsync(2) and fcntl(2) man
pages; link(2) failing with errno 45 (EOPNOTSUPP on macOS, intro(2)) on exFAT/FAT volumes.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from sharpmld.core import fsio
from sharpmld.queue import transitions

F_FULLFSYNC = 51  # the value in macOS <sys/fcntl.h>


class FakeFcntl:
    """An ``fcntl`` module as on macOS: has F_FULLFSYNC; may refuse it like a network share."""

    def __init__(self, refuse: bool = False) -> None:
        self.F_FULLFSYNC = F_FULLFSYNC
        self.refuse = refuse
        self.calls: list[tuple[int, int]] = []

    def fcntl(self, fd: int, op: int) -> int:
        self.calls.append((fd, op))
        if self.refuse:
            raise OSError(errno.ENOTSUP, "Operation not supported")
        return 0


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    real = os.fsync

    def spy(fd: int) -> None:
        seen.append(fd)
        real(fd)

    monkeypatch.setattr(fsio.os, "fsync", spy)
    return seen


def test_full_fsync_uses_f_fullfsync_when_available(tmp_path: Path, fsyncs: list[int]) -> None:
    fake = FakeFcntl()
    with open(tmp_path / "f", "wb") as f:
        fsio.full_fsync(f.fileno(), fake)  # type: ignore[arg-type]
        assert fake.calls == [(f.fileno(), F_FULLFSYNC)]
    assert fsyncs == []


def test_full_fsync_falls_back_to_fsync_when_refused(tmp_path: Path, fsyncs: list[int]) -> None:
    fake = FakeFcntl(refuse=True)
    with open(tmp_path / "f", "wb") as f:
        fsio.full_fsync(f.fileno(), fake)  # type: ignore[arg-type]
        assert fsyncs == [f.fileno()]
    assert len(fake.calls) == 1


def test_full_fsync_without_f_fullfsync_is_fsync(tmp_path: Path, fsyncs: list[int]) -> None:
    linux_like = SimpleNamespace(fcntl=lambda fd, op: pytest.fail("no F_FULLFSYNC on Linux"))
    with open(tmp_path / "f", "wb") as f:
        fsio.full_fsync(f.fileno(), linux_like)  # type: ignore[arg-type]
        assert fsyncs == [f.fileno()]


def test_atomic_writes_and_folder_syncs_go_through_full_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeFcntl()
    monkeypatch.setattr(fsio, "_fcntl", fake)
    monkeypatch.setattr(fsio.full_fsync, "__defaults__", (fake,))
    fsio.write_text(tmp_path / "result.json", "{}")
    assert len(fake.calls) == 2  # the file, then its folder
    assert (tmp_path / "result.json").read_text() == "{}"


def _exfat_link(source: Path, target: Path) -> None:
    raise OSError(45, "Operation not supported")  # macOS errno 45 on exFAT


def _linux_vfat_link(source: Path, target: Path) -> None:
    raise PermissionError(errno.EPERM, "Operation not permitted")


@pytest.mark.parametrize("link", [_exfat_link, _linux_vfat_link])
def test_move_without_hard_links_moves_the_file(tmp_path: Path, link: fsio.LinkFn) -> None:
    source = tmp_path / "a.jpg"
    source.write_bytes(b"photo")
    fsio.move_file_exclusive(source, tmp_path / "b.jpg", link)
    assert not source.exists()
    assert (tmp_path / "b.jpg").read_bytes() == b"photo"


def test_move_without_hard_links_never_replaces(tmp_path: Path) -> None:
    source = tmp_path / "a.jpg"
    source.write_bytes(b"photo")
    (tmp_path / "b.jpg").write_bytes(b"someone else's")
    with pytest.raises(FileExistsError):
        fsio.move_file_exclusive(source, tmp_path / "b.jpg", _exfat_link)
    assert source.read_bytes() == b"photo"
    assert (tmp_path / "b.jpg").read_bytes() == b"someone else's"


def test_move_keeps_real_link_errors(tmp_path: Path) -> None:
    def broken(source: Path, target: Path) -> None:
        raise OSError(errno.EIO, "I/O error")

    source = tmp_path / "a.jpg"
    source.write_bytes(b"photo")
    with pytest.raises(OSError, match="I/O"):
        fsio.move_file_exclusive(source, tmp_path / "b.jpg", broken)
    assert source.read_bytes() == b"photo"
    assert not (tmp_path / "b.jpg").exists()


def test_hand_back_on_exfat_picks_a_free_name(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "IMG_1.jpg").write_bytes(b"new drop")
    source = tmp_path / "IMG_1.jpg"
    source.write_bytes(b"handed back")
    back = transitions.move_without_replacing(source, inbox, "IMG_1.jpg", _exfat_link)
    assert back.name == "IMG_1 (2).jpg"
    assert back.read_bytes() == b"handed back"
    assert (inbox / "IMG_1.jpg").read_bytes() == b"new drop"
    assert not source.exists()


def test_link_or_copy_on_exfat_copies_and_keeps_the_source(tmp_path: Path) -> None:
    source = tmp_path / "cached.ply"
    source.write_bytes(b"splat")
    target = tmp_path / "out.ply"
    target.write_bytes(b"old")
    fsio.link_or_copy(source, target, _exfat_link)
    assert target.read_bytes() == b"splat"
    assert source.read_bytes() == b"splat"
    assert not any(fsio.is_temp_name(p.name) for p in tmp_path.iterdir())
