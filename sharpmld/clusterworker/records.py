"""What an attempt says about itself, for the intake's finisher to gather.

Written into the attempt folder before the commit, so a committed attempt always carries
one of them: ``RESULT.json`` (the photo made it: its result.json entry, as the single-host
daemon writes it) or ``FAILED.json`` (the photo itself failed in the model worker: a bad image
that validation missed, an engine error). Both name the host and the attempt, so the job's
result.json can say which machine made which photo.

An attempt whose model worker died on the photo is never committed: its outputs are
removed and ``LOST.json`` says why (the exit status), for the job's failure report. Such
attempts, and those of workers killed outright (a folder with no record), are what the photo
is charged: a worker that is told to stop removes its attempt and charges nothing. When a
photo has been charged ``max_deliver`` times, the next worker commits its failure instead of
running it again (``charged``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sharpmld.core import fsio

RESULT_FILE = "RESULT.json"
FAILED_FILE = "FAILED.json"
LOST_FILE = "LOST.json"


def write_result(folder: Path, entry: dict[str, Any], made_by: dict[str, Any]) -> Path:
    """The photo made it: ``entry`` is its result.json entry (outputs, sha256, timings)."""
    path = folder / RESULT_FILE
    fsio.write_json(path, {**entry, "made_by": made_by})
    return path


def write_failure(folder: Path, code: str, message: str, made_by: dict[str, Any]) -> Path:
    """The photo failed for a reason of its own: ``code`` is the project's stable error code,
    ``message`` the sentence a person reads in the job's report."""
    path = folder / FAILED_FILE
    fsio.write_json(path, {"code": code, "message": message, "made_by": made_by})
    return path


def write_lost(folder: Path, reason: str, detail: str, made_by: dict[str, Any]) -> Path:
    """The model worker died on the photo (``reason``: crash, timeout or memory)."""
    path = folder / LOST_FILE
    fsio.write_json(path, {"reason": reason, "detail": detail, "made_by": made_by})
    return path


def charged(photo_attempts: Path, own: str) -> list[dict[str, Any]]:
    """The earlier attempts at a photo that ended with its worker dead: ``LOST.json``'s
    content, or ``{}`` for a worker killed outright. Committed attempts are not among them
    (a photo with a commit is never run again), nor are attempts still under way elsewhere
    told apart from dead ones: a paused worker's attempt counts until it resumes."""
    out: list[dict[str, Any]] = []
    try:
        entries = sorted(os.scandir(photo_attempts), key=lambda e: e.name)
    except FileNotFoundError:
        return out
    for entry in entries:
        if entry.name == own or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            lost = json.loads((Path(entry.path) / LOST_FILE).read_text("utf-8"))
        except (OSError, ValueError):
            lost = {}
        out.append(lost if isinstance(lost, dict) else {})
    return out
