"""``job.toml``: optional per-job settings a person or script puts inside the dropped folder.

Example::

    priority = 10          # higher runs first (default 0)
    f_px = 1450.0          # focal length in pixels, overriding EXIF
    formats = ["ply", "splat"]

It is read by the daemon (TOML only, never image content) and capped in size.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sharpmld.core.config import KNOWN_FORMATS
from sharpmld.core.errors import InvalidJobToml, format_advice
from sharpmld.intake.names import JOB_TOML

MAX_BYTES = 64 * 1024

BOM = "\ufeff"
"""Older Windows Notepad and some editors start UTF-8 files with it; TOML parsers refuse it."""

PRIORITY_RANGE = (-1_000_000, 1_000_000)
F_PX_RANGE = (1.0, 1_000_000.0)
"""From a 1-pixel focal length to a long telephoto on a large sensor, with room to spare."""
VIDEO_FRAMES_RANGE = (1, 64)


@dataclass(frozen=True)
class JobSpec:
    """Validated job settings; None means "the configuration's default"."""

    priority: int = 0
    f_px: float | None = None
    formats: list[str] | None = None
    video_frames: int | None = None


def _invalid(problem: str) -> InvalidJobToml:
    return InvalidJobToml(format_advice(InvalidJobToml, problem=problem), problem=problem)


def read_jobspec(folder: Path) -> JobSpec:
    """Read ``folder/job.toml``; absent means defaults; anything wrong raises InvalidJobToml."""
    path = folder / JOB_TOML
    try:
        st = path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return JobSpec()
    if not path.is_file() or path.is_symlink():
        raise _invalid("job.toml must be a plain file")
    if st.st_size > MAX_BYTES:
        raise _invalid(f"job.toml is larger than {MAX_BYTES // 1024} KB")
    try:
        text = path.read_bytes().decode("utf-8")
        data = tomllib.loads(text.removeprefix(BOM))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _invalid(f"it is not valid TOML ({exc})") from None
    return parse(data)


KEYS = ("priority", "f_px", "formats", "video_frames")


def parse(data: dict[str, Any]) -> JobSpec:
    """Validate the parsed TOML table."""
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise _invalid(f"unknown key '{unknown[0]}' (known: {', '.join(KEYS)})")
    priority = _whole(data.get("priority", 0), "priority", PRIORITY_RANGE, "priority = 10")
    f_px = data.get("f_px")
    if f_px is not None:
        f_px = _number(f_px, "f_px", F_PX_RANGE, "f_px = 1450.0")
    formats = data.get("formats")
    if formats is not None:
        formats = check_formats(formats, "'formats'")
    frames = data.get("video_frames")
    if frames is not None:
        frames = _whole(frames, "video_frames", VIDEO_FRAMES_RANGE, "video_frames = 8")
    return JobSpec(priority, f_px, formats, frames)


def _whole(value: Any, key: str, bounds: tuple[int, int], example: str) -> int:
    """A TOML integer inside ``bounds`` (TOML booleans are Python ints: never a number here)."""
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(f"'{key}' must be a whole number from {low} to {high}, got {value!r}; e.g. {example}")
    return value


def _number(value: Any, key: str, bounds: tuple[float, float], example: str) -> float:
    """A finite TOML number inside ``bounds``; nan and inf compare false, so test them first."""
    low, high = bounds
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not low <= value <= high:
        raise _invalid(f"'{key}' must be a number from {low:g} to {high:g}, got {value!r}; e.g. {example}")
    return float(value)


def check_formats(formats: Any, what: str) -> list[str]:
    """A non-empty list of known format names, without repeats."""
    if not isinstance(formats, list) or not formats or not all(isinstance(f, str) for f in formats):
        raise _invalid(f'{what} must be a list of names, e.g. formats = ["ply", "splat"]')
    bad = [f for f in formats if f not in KNOWN_FORMATS]
    if bad:
        raise _invalid(f"unknown format '{bad[0]}' (known: {', '.join(KNOWN_FORMATS)})")
    return list(dict.fromkeys(formats))


def peek_priority(folder: Path) -> int:
    """The priority for ordering the inbox; a broken job.toml sorts as 0 and fails later."""
    try:
        return read_jobspec(folder).priority
    except InvalidJobToml:
        return 0
