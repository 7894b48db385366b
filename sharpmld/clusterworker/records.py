"""What an attempt says about itself, for the intake's finisher to gather.

Written into the attempt folder before the commit, so a committed attempt always carries
one of them: ``RESULT.json`` (the photo made it: its result.json entry, as the single-host
daemon writes it) or ``FAILED.json`` (the photo itself failed in the model worker: a bad image
that validation missed, an engine error). Both name the host and the attempt, so the job's
result.json can say which machine made which photo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sharpmld.core import fsio

RESULT_FILE = "RESULT.json"
FAILED_FILE = "FAILED.json"


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
