"""What one photo's message carries: enough for any worker to find the photo and its job.

The payload is JSON, so a worker of another version (or language) can read it. Paths are
relative to the shared root, because each host mounts the shared folder where it likes
(``/Volumes/studio`` on a Mac, ``/mnt/studio`` on Linux): a worker joins the path to its own
``[daemon] root``. The photo's original stays in the job's folder under ``working/``; the
worker only reads it, and writes nothing outside its attempt folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

VERSION = 1


class BadTask(ValueError):
    """A message that is not a photo task this version understands (it is terminated)."""


@dataclass(frozen=True)
class PhotoTask:
    """One photo of one job, as published by the intake."""

    job_id: str
    photo: str  # the photo's file name inside the job's folder
    job_dir: str  # the job's folder relative to the shared root, e.g. "working/<job id>"
    options: dict[str, Any] = field(default_factory=dict)  # the job's output options

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "v": VERSION,
                "job": self.job_id,
                "photo": self.photo,
                "job_dir": self.job_dir,
                "options": self.options,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> PhotoTask:
        """Parse a payload; raise BadTask for anything that is not a task of this version."""
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadTask(f"payload is not JSON: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("v") != VERSION:
            raise BadTask(f"payload is not a version {VERSION} photo task")
        job_id, photo, job_dir = raw.get("job"), raw.get("photo"), raw.get("job_dir")
        options = raw.get("options", {})
        if not all(isinstance(v, str) and v for v in (job_id, photo, job_dir)) or not isinstance(
            options, dict
        ):
            raise BadTask("payload lacks job, photo or job_dir")
        assert isinstance(job_id, str) and isinstance(photo, str) and isinstance(job_dir, str)
        rel = PurePosixPath(job_dir)
        if rel.is_absolute() or ".." in rel.parts or "/" in photo or photo in (".", ".."):
            raise BadTask(f"payload names a path outside the shared root: {job_dir!r}, {photo!r}")
        return cls(job_id=job_id, photo=photo, job_dir=job_dir, options=options)
