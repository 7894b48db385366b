"""``published.json``: what the intake offered the workers for one job, kept in the job's folder.

It is written once every photo's publish was confirmed by the broker, never before: a job in
``working/`` without it was claimed but not (wholly) published, and is published again after
a restart, the broker dropping the repeats by message id. It holds each photo's stream
sequence, which is how a max-deliveries advisory (it names a sequence) finds its photo, and
which photos the broker gave up on, since the advisory itself is not kept once acked.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sharpmld.core import fsio
from sharpmld.queue.record import utcnow

PUBLISHED_FILE = "published.json"


@dataclass
class Photo:
    """One published photo: its key on the broker and where it came from in the job."""

    photo: str  # the PhotoTask's photo: a flat name, unique in the job (commit and message id)
    rel: str  # the input's path inside input/, as result.json names it
    stem: str  # the output stem the worker names its files by
    src: str  # the original's path relative to the job's folder
    sequence: int = 0  # where the broker stored it (0 until it said)


@dataclass
class Ledger:
    """The content of ``published.json``."""

    band: str
    photos: dict[str, Photo]
    published_at: str = field(default_factory=utcnow)
    duplicates: int = 0  # photos the broker already had when they were last published
    given_up: dict[str, int] = field(default_factory=dict)  # photo -> deliveries it had

    def to_dict(self) -> dict[str, Any]:
        return {
            "band": self.band,
            "published_at": self.published_at,
            "duplicates": self.duplicates,
            "photos": [asdict(p) for p in self.photos.values()],
            "given_up": self.given_up,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ledger:
        fields = Photo.__dataclass_fields__
        photos = {str(p["photo"]): Photo(**{k: p[k] for k in fields}) for p in data["photos"]}
        return cls(
            band=str(data["band"]),
            photos=photos,
            published_at=str(data.get("published_at", "")),
            duplicates=int(data.get("duplicates", 0)),
            given_up={str(k): int(v) for k, v in dict(data.get("given_up", {})).items()},
        )


def write(job_dir: Path, ledger: Ledger) -> None:
    """Record (temp name, fsync, rename) that the job's photos are with the broker."""
    fsio.write_json(job_dir / PUBLISHED_FILE, ledger.to_dict())


def read(job_dir: Path) -> Ledger | None:
    """The job's ledger, or None when it was never (wholly) published or the file is damaged."""
    try:
        return Ledger.from_dict(json.loads((job_dir / PUBLISHED_FILE).read_text("utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # published again: the broker drops what it already has
