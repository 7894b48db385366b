"""Which worker's outputs count for a photo: the first to create its ``COMMIT`` marker.

Each delivery of a photo writes into an attempt folder of its own on the shared folder
(``<job>/attempts/<photo>/<attempt>/``), so two workers given the same photo (a redelivery
after a pause, a partition) never write the same file. When an attempt is complete, its
worker creates ``<job>/commits/<photo>.COMMIT`` with O_EXCL: the file system lets exactly one
creation succeed, on NFS as well (NFSv3+ exclusive create). The marker names the attempt.
The worker acks the message only after that; a late ack, or a second delivery that loses
the race, deletes its own attempt and does nothing else: the commit decides, not the ack.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sharpmld.core import fsio

ATTEMPTS_DIR = "attempts"
COMMITS_DIR = "commits"
COMMIT_SUFFIX = ".COMMIT"


@dataclass(frozen=True)
class Attempt:
    """One delivery's work on one photo: where it writes, and under which name it commits."""

    job_dir: Path
    photo: str
    name: str  # unique per delivery, e.g. "<host id>.<pid>.<delivery count>"

    @property
    def folder(self) -> Path:
        return self.job_dir / ATTEMPTS_DIR / _safe(self.photo) / self.name

    def open(self) -> Path:
        """Create the attempt's folder (a leftover from a crash of this very attempt is cleared).

        The job's folder must still be there: one that closed (moved to done/) meanwhile
        raises FileNotFoundError rather than being made again, empty, in working/.
        """
        shutil.rmtree(self.folder, ignore_errors=True)
        (self.job_dir / ATTEMPTS_DIR).mkdir(exist_ok=True)
        self.folder.mkdir(parents=True)
        return self.folder

    def commit(self) -> bool:
        """Make this attempt's outputs the photo's, unless another attempt did first.

        True when this attempt won. On losing, its folder is removed: nothing of it is left.
        """
        marker = commit_marker(self.job_dir, self.photo)
        if not self.folder.is_dir():  # gone with its job, or swept: nothing of it may count
            raise FileNotFoundError(f"the attempt folder {self.folder} is gone")
        for path in self.folder.rglob("*"):  # the outputs are durable before they count
            if path.is_file():
                _fsync(path)
        fsio.fsync_dir(self.folder)
        marker.parent.mkdir(exist_ok=True)  # not its parents: a closed job stays closed
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            self.discard()
            return False
        try:
            os.write(fd, self.name.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        fsio.fsync_dir(marker.parent)
        return True

    def discard(self) -> None:
        """Remove this attempt's folder (it lost, was cut short, or its worker was stopped)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def commit_marker(job_dir: Path, photo: str) -> Path:
    return job_dir / COMMITS_DIR / f"{_safe(photo)}{COMMIT_SUFFIX}"


def committed(job_dir: Path, photo: str) -> str | None:
    """The attempt whose outputs count for ``photo``, or None while none has committed."""
    try:
        return commit_marker(job_dir, photo).read_text("utf-8") or None
    except FileNotFoundError:
        return None


def winning_folder(job_dir: Path, photo: str) -> Path | None:
    """The committed attempt's folder, or None."""
    name = committed(job_dir, photo)
    return None if name is None else job_dir / ATTEMPTS_DIR / _safe(photo) / name


def sweep_losers(job_dir: Path, photo: str) -> list[str]:
    """Remove every attempt of ``photo`` but the committed one (a crashed loser's leftovers)."""
    winner = committed(job_dir, photo)
    folder = job_dir / ATTEMPTS_DIR / _safe(photo)
    removed: list[str] = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if entry.name != winner:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.name)
    return removed


def _safe(photo: str) -> str:
    """A photo's relative path as one folder name (``a/b.jpg`` → ``a%2Fb.jpg``)."""
    return fsio.fit_name(photo.replace("%", "%25").replace("/", "%2F"), 200)


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.EISDIR):
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
