"""Crash-safe file writing: temp name, fsync, rename, fsync the folder.

Every file a person or another process reads (outputs, result.json, state) goes through
here, so a crash at any instant leaves either the old file, the new one, or a temp name that
recovery removes -- never a half-written file under its real name.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TEMP_PREFIX = ".sharpmld-tmp-"


MAX_NAME_BYTES = 255


def fit_name(name: str, room: int = MAX_NAME_BYTES) -> str:
    """``name`` cut to ``room`` bytes as the filesystem counts them (never mid-character)."""
    raw = os.fsencode(name)
    if len(raw) <= room:
        return name
    cut = raw[:room]
    while cut:
        try:
            cut.decode("utf-8")
            break
        except UnicodeDecodeError as exc:
            if exc.start == 0 and exc.reason != "unexpected end of data":
                break  # not UTF-8 at all: keep the bytes as they are
            cut = cut[:-1]
    return os.fsdecode(cut)


def temp_name_for(path: Path) -> Path:
    """A unique hidden sibling of ``path``; recognisable so that recovery can sweep it."""
    prefix = f"{TEMP_PREFIX}{secrets.token_hex(4)}-"
    return path.with_name(prefix + fit_name(path.name, MAX_NAME_BYTES - len(prefix)))


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of our temp files (left over by a crash if seen at rest)."""
    return name.startswith(TEMP_PREFIX)


def fsync_dir(path: Path) -> None:
    """Make a rename or create inside ``path`` durable; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on success fsync it and rename it into place.

    On any exception the temp file is removed and ``path`` is untouched.
    """
    tmp = temp_name_for(path)
    f = open(tmp, mode)  # noqa: SIM115 - closed below on every path
    try:
        yield f
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(tmp, path)
    except BaseException:
        f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically and durably."""
    with atomic_writer(path) as f:
        f.write(data)


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically and durably (undecodable bytes escaped)."""
    write_bytes(path, text.encode("utf-8", "backslashreplace"))


def to_json(obj: Any, indent: int | None = 2) -> str:
    """JSON that is valid UTF-8 even for file names that are not (their bytes arrive as
    surrogates): those documents fall back to ``\\u`` escapes, which read back exactly."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, indent=indent, ensure_ascii=True, default=str)
    return text


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically and durably."""
    write_text(path, to_json(obj) + "\n")
