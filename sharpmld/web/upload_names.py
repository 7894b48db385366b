"""The names an upload may use: a file's path inside the job, and the job's name in the inbox.

Both come from a stranger's browser. A path is refused outright when it could leave the job
folder or confuse the intake (``..``, an absolute path, a backslash, control bytes); a path
the intake would ignore anyway (``.DS_Store``, ``__MACOSX/…``, a ``.part`` file) is skipped
rather than stored. The job's name is made into one the intake claims (no leading dot, no
in-progress ending), since it is only a label: refusing it would help no one.
"""

from __future__ import annotations

import os
import re

from sharpmld.core import fsio
from sharpmld.core.errors import TooManyEntries, UnsafeName, format_advice
from sharpmld.intake.names import IN_PROGRESS_SUFFIXES, is_in_progress, is_junk

DEFAULT_JOB_NAME = "upload"
MAX_JOB_NAME_BYTES = 200
"""Room left in a 255-byte name for the temp prefix and a `` (2)`` the inbox may add."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SEPARATORS = re.compile(r"[/\\\x00-\x1f\x7f]+")


def browser_filename(raw: bytes) -> str:
    """The file name a browser put in a multipart ``filename="…"``, decoded.

    Browsers write it as UTF-8 and, per the HTML standard's form encoding, escape only the
    double quote, CR and LF as ``%22``, ``%0D`` and ``%0A``: those are turned back here so
    that a name holding them is judged as the person's own name.
    """
    text = raw.decode("utf-8", "surrogateescape")
    return text.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")


def clean_path(name: str, max_depth: int) -> tuple[str, ...] | None:
    """The parts of a relative path to store a file under, or None to skip it as clutter.

    Raises UnsafeName for anything that could step outside the job or be misread later, and
    TooManyEntries for a path nested deeper than the intake goes.
    """
    shown = repr(name)
    parts = tuple(name.split("/"))
    if (
        not name
        or "\\" in name
        or _CONTROL.search(name)
        or any(p in ("", ".", "..") for p in parts)
        or (len(parts[0]) == 2 and parts[0][1] == ":")  # a drive, "C:"
        or any(len(os.fsencode(p)) > fsio.MAX_NAME_BYTES for p in parts)
    ):
        raise UnsafeName(format_advice(UnsafeName, name=shown), file=name)
    if any(is_junk(p) or is_in_progress(p) for p in parts):
        return None
    if len(parts) > max_depth:
        raise TooManyEntries(format_advice(TooManyEntries), file=name, max_depth=max_depth)
    return parts


def job_name(given: str | None, first_file: tuple[str, ...] | None) -> str:
    """The inbox name for the job: the one given, else the first file's folder or stem."""
    text = given or ""
    if not text.strip() and first_file:
        text = first_file[0] if len(first_file) > 1 else first_file[0].rsplit(".", 1)[0]
    text = _SEPARATORS.sub("-", text).strip().lstrip(".").strip()
    changed = True
    while changed:
        changed = False
        for suffix in IN_PROGRESS_SUFFIXES:
            if text.casefold().endswith(suffix):
                text, changed = text[: -len(suffix)].rstrip(), True
    text = fsio.fit_name(text, MAX_JOB_NAME_BYTES).strip()
    if not text or is_junk(text) or is_in_progress(text):
        return DEFAULT_JOB_NAME
    return text
