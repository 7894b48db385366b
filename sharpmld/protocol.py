"""The daemon <-> worker protocol: one JSON object per line, both ways.

Commands go to the worker's stdin; events come back on a dedicated pipe (its number is in
``SHARPMLD_EVENT_FD``), so anything ml-sharp or torch prints to stdout cannot corrupt them.

Commands:  {"op": "job", ...JobRequest}  |  {"op": "stop"}
Events:    ready | unavailable | image_started | image_done | job_done | error
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

EVENT_FD_ENV = "SHARPMLD_EVENT_FD"
MAX_LINE = 1 << 20


@dataclass(frozen=True)
class ImageTask:
    """One image of a job: where it is and the stem its outputs get."""

    rel: str
    src: str
    stem: str
    kind: str = "image"


@dataclass(frozen=True)
class JobRequest:
    """Everything the worker needs to run one job, outputs written into ``job_dir``."""

    job_id: str
    job_dir: str
    images: list[ImageTask]
    formats: list[str] = field(default_factory=lambda: ["ply", "splat"])
    f_px: float | None = None
    max_pixels_side: int = 8000
    cache_dir: str | None = None
    cache_salt: str = ""
    video_frames: int = 8
    video_max_seconds: float = 300.0
    previews: bool = True
    orbit_frames: int = 0

    def to_message(self) -> dict[str, Any]:
        return {"op": "job", **asdict(self)}

    @classmethod
    def from_message(cls, msg: dict[str, Any]) -> JobRequest:
        images = [ImageTask(**i) for i in msg["images"]]
        return cls(
            job_id=str(msg["job_id"]),
            job_dir=str(msg["job_dir"]),
            images=images,
            formats=list(msg.get("formats", ["ply", "splat"])),
            f_px=msg.get("f_px"),
            max_pixels_side=int(msg.get("max_pixels_side", 8000)),
            cache_dir=msg.get("cache_dir"),
            cache_salt=str(msg.get("cache_salt", "")),
            video_frames=int(msg.get("video_frames", 8)),
            video_max_seconds=float(msg.get("video_max_seconds", 300.0)),
            previews=bool(msg.get("previews", True)),
            orbit_frames=int(msg.get("orbit_frames", 0)),
        )


def encode(message: dict[str, Any]) -> bytes:
    """One line of compact JSON."""
    return json.dumps(message, separators=(",", ":")).encode("utf-8") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """Parse one line; raises ValueError on anything that is not a JSON object."""
    msg = json.loads(line)
    if not isinstance(msg, dict):
        raise ValueError("protocol line is not an object")
    return msg


class LineReader:
    """Splits a non-blocking byte stream into lines; bounded so a runaway peer cannot bloat us."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf.extend(data)
        lines: list[bytes] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                break
            lines.append(bytes(self._buf[:nl]))
            del self._buf[: nl + 1]
        if len(self._buf) > MAX_LINE:
            self._buf.clear()
            raise ValueError("protocol line too long")
        return lines
