"""``job.json``: what a job is and what has happened to it, kept inside the job's folder.

The folder a job sits in is its state; this file is its memory (original name, attempts and
their history), so it travels with the job through every rename. Each history entry is one
try: ``outcome`` is ``running`` while it runs, then what really ended it (``done``,
``failed``, ``worker_crash``, ``timeout``, ``out_of_memory``, ``daemon_died``...).
"""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sharpmld.core import fsio
from sharpmld.queue.layout import INPUT_DIR, JOB_FILE


def utcnow() -> str:
    """An ISO-8601 UTC timestamp with a Z, as every file we write uses."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class JobRecord:
    """The durable facts about one job."""

    job_id: str
    original_name: str
    source: str  # "folder" or "file"
    claimed_at: str = field(default_factory=utcnow)
    host: str = field(default_factory=socket.gethostname)
    attempts: int = 0  # tries that ended with evidence about the job (see daemon.attempts)
    daemon_restarts: int = 0  # tries cut short because the daemon itself died
    priority: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class Job:
    """A job folder on disk and its record; ``path`` changes as the job moves."""

    path: Path
    record: JobRecord

    @property
    def job_id(self) -> str:
        return self.record.job_id

    @property
    def input_dir(self) -> Path:
        return self.path / INPUT_DIR

    def save(self) -> None:
        """Persist the record atomically."""
        fsio.write_json(self.path / JOB_FILE, self.record.to_dict())

    @classmethod
    def load(cls, path: Path) -> Job:
        """Read a job folder's record; raises OSError or ValueError when it is unreadable."""
        data = json.loads((path / JOB_FILE).read_text("utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path / JOB_FILE} does not hold an object")
        return cls(path, JobRecord.from_dict(data))
