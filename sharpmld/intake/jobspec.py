"""``job.toml``: optional per-job settings a person or script puts inside the dropped folder.

Example::

    priority = 10          # higher runs first (default 0)
    f_px = 1450.0          # focal length in pixels, overriding EXIF
    formats = ["ply", "splat"]

It is read by the daemon (TOML only, never image content) and capped in size.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sharpmld.core.config import KNOWN_FORMATS
from sharpmld.core.errors import InvalidJobToml, format_advice
from sharpmld.intake.names import JOB_TOML

MAX_BYTES = 64 * 1024


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
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _invalid(f"it is not valid TOML ({exc})") from None
    return parse(data)


KEYS = ("priority", "f_px", "formats", "video_frames")


def parse(data: dict[str, Any]) -> JobSpec:
    """Validate the parsed TOML table."""
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise _invalid(f"unknown key '{unknown[0]}' (known: {', '.join(KEYS)})")
    priority = data.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise _invalid("'priority' must be a whole number, e.g. priority = 10")
    f_px = data.get("f_px")
    if f_px is not None and (isinstance(f_px, bool) or not isinstance(f_px, int | float) or f_px <= 0):
        raise _invalid("'f_px' must be a positive number of pixels, e.g. f_px = 1450.0")
    formats = data.get("formats")
    if formats is not None:
        formats = check_formats(formats, "'formats'")
    frames = data.get("video_frames")
    if frames is not None and (
        isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= 64
    ):
        raise _invalid("'video_frames' must be a whole number from 1 to 64, e.g. video_frames = 8")
    return JobSpec(priority, float(f_px) if f_px is not None else None, formats, frames)


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
