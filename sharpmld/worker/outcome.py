"""How the worker words one image's outcome for the daemon: the events, and what errors mean.

A person reads an event's ``message``; a bug's repr and traceback go to ``detail``, which the
daemon logs and never shows.
"""

from __future__ import annotations

import errno
import traceback
from dataclasses import dataclass
from typing import Any

from sharpmld.core.errors import DiskFull, InternalError, OutputTooLarge, SharpmldError, WriteFailed
from sharpmld.core.units import DISK_FULL_ERRNOS
from sharpmld.protocol import ImageDone, ImageFailed, ImageStarted


@dataclass(frozen=True)
class Slot:
    """Which input of which job an event is about."""

    job_id: str
    rel: str
    index: int

    def started(self) -> ImageStarted:
        return ImageStarted(self.job_id, self.rel, self.index)

    def done(self, sha256: str, entry: dict[str, Any]) -> ImageDone:
        return ImageDone(self.job_id, self.rel, self.index, sha256, entry)

    def failed(self, sha256: str, error: BaseException | None) -> ImageFailed:
        """The failure report; anything not of our hierarchy is a bug, said plainly."""
        if isinstance(error, SharpmldError):
            return ImageFailed.of(self.job_id, self.rel, self.index, error, sha256=sha256)
        detail = repr(error)
        if error is not None and error.__traceback__ is not None:
            detail += "\n" + "".join(traceback.format_tb(error.__traceback__)[-3:])
        unexpected = InternalError("An unexpected error stopped this image; the log has the details.")
        return ImageFailed.of(self.job_id, self.rel, self.index, unexpected, sha256=sha256, detail=detail)


def write_error(exc: OSError) -> SharpmldError:
    """What a failed write means: a full disk, a file over the size limit, or something else."""
    kind: type[SharpmldError] = WriteFailed
    if exc.errno in DISK_FULL_ERRNOS:
        kind = DiskFull
    elif exc.errno == errno.EFBIG:
        kind = OutputTooLarge
    return kind(f"Writing the outputs failed: {exc.strerror or exc}.")
