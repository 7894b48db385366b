"""Files and folders inside a job that the daemon's user cannot read are named in the
account as ``permission_denied``, never silently left out. The suite runs as root, which
reads anything, so the refusal is injected where the system would raise it."""

from __future__ import annotations

import errno
import os
import pwd
from pathlib import Path
from typing import Any

import pytest

import sharpmld.intake.walk as walk_module
from sharpmld.core.units import MB
from sharpmld.intake.inventory import inventory
from tests.intake import corpus


def _deny(monkeypatch: pytest.MonkeyPatch, names: set[str]) -> None:
    real = os.open

    def guarded(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if os.path.basename(os.fspath(path)) in names:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", guarded)


def _inventory(root: Path) -> Any:
    return inventory(root, max_file_bytes=50 * MB, max_job_bytes=500 * MB, max_images=100)


def test_an_unreadable_subfolder_and_file_are_rejected_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = tmp_path / "job"
    (job / "locked").mkdir(parents=True)
    corpus.write_jpeg(job / "IMG_1.jpg")
    corpus.write_jpeg(job / "locked" / "IMG_2.jpg")
    corpus.write_jpeg(job / "secret.jpg")
    _deny(monkeypatch, {"locked", "secret.jpg"})
    inv = _inventory(job)
    assert [c.rel for c in inv.images] == ["IMG_1.jpg"]
    rejected = {r.rel: r for r in inv.rejected}
    assert set(rejected) == {"locked", "secret.jpg"}, rejected
    for r in rejected.values():
        assert r.code == "permission_denied"
        assert "chmod" in r.message and "cannot read" in r.message


def test_a_folder_that_can_be_listed_but_not_entered_names_what_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = tmp_path / "job"
    (job / "half").mkdir(parents=True)
    corpus.write_jpeg(job / "IMG_1.jpg")
    corpus.write_jpeg(job / "half" / "IMG_2.jpg")
    real_scandir = os.scandir

    class Denying:
        def __init__(self, entry: os.DirEntry[str]) -> None:
            self.name = entry.name
            self._entry = entry

        def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
            if self.name == "IMG_2.jpg":  # mode r-- folder: names listed, nothing stat-able
                raise PermissionError(errno.EACCES, "Permission denied", self.name)
            return self._entry.stat(follow_symlinks=follow_symlinks)

    class Scan:
        def __init__(self, fd: int) -> None:
            self._it = real_scandir(fd)

        def __enter__(self) -> Any:
            return (Denying(e) for e in self._it)

        def __exit__(self, *exc: object) -> None:
            self._it.close()

    monkeypatch.setattr(walk_module.os, "scandir", Scan)
    inv = _inventory(job)
    assert [c.rel for c in inv.images] == ["IMG_1.jpg"]
    assert [(r.rel, r.code) for r in inv.rejected] == [("half/IMG_2.jpg", "permission_denied")]


def test_the_message_names_the_user_whose_permissions_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sudo -u, or su without -, leaves $USER and $LOGNAME naming someone else.
    monkeypatch.setenv("USER", "someone-else")
    monkeypatch.setenv("LOGNAME", "someone-else")
    job = tmp_path / "job"
    job.mkdir()
    corpus.write_jpeg(job / "IMG_1.jpg")
    corpus.write_jpeg(job / "secret.jpg")
    _deny(monkeypatch, {"secret.jpg"})
    (rejected,) = _inventory(job).rejected
    assert f"chown -R {pwd.getpwuid(os.geteuid()).pw_name}" in rejected.message, rejected.message
    assert "someone-else" not in rejected.message
