"""``sharpmld submit`` and ``sharpmld retry``: putting files into the inbox the safe way.

A copy is made under a dot-name (which the daemon ignores) and renamed into place only when
complete, so the daemon can never claim half a copy. Scripts should do the same.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sharpmld.core.config import Config
from sharpmld.core.errors import SharpmldError
from sharpmld.intake.names import is_in_progress, is_junk
from sharpmld.queue import transitions
from sharpmld.queue.delivery import Staging
from sharpmld.queue.jobid import is_job_id
from sharpmld.queue.layout import INPUT_DIR, JOB_FILE, Layout
from sharpmld.queue.record import Job, JobRecord


def submit(config: Config, source: Path) -> Path:
    """Copy ``source`` (file or folder) into the inbox atomically; return its inbox path."""
    layout = Layout(config.root)
    layout.ensure()
    name = source.resolve().name
    if is_junk(name) or is_in_progress(name):
        raise SharpmldError(
            f"{name!r} would be ignored in the inbox (hidden, junk or in-progress name); rename it first"
        )
    staging = Staging(layout, name)
    try:
        if source.is_dir():
            shutil.copytree(source, staging.path, symlinks=True)
        else:
            shutil.copy2(source, staging.path)
    except BaseException:
        staging.discard()
        raise
    return staging.commit(name)


def retry(config: Config, job: str) -> Path | None:
    """Move a failed job's input back into the inbox and drop the failure record."""
    layout = Layout(config.root)
    names = sorted(os.listdir(layout.failed)) if layout.failed.is_dir() else []
    matches = [n for n in names if is_job_id(n) and n.startswith(job)] if job else []
    if len(matches) != 1:
        return None
    path = layout.failed / matches[0]
    if not (path / INPUT_DIR).is_dir() or not any((path / INPUT_DIR).iterdir()):
        raise SharpmldError(f"failed job {matches[0]} holds no input to retry; it is left as it is")
    return transitions.hand_back(layout, _load_leniently(path))


def _load_leniently(path: Path) -> Job:
    """The job's record, with what an old or damaged ``job.json`` lacks filled in.

    Early releases wrote records without ``source`` or ``original_name``; the dataclass needs
    them, so a bare load raised TypeError. A folder hand-back keeps every file whatever the
    record said, so "folder" and the job id are safe stand-ins.
    """
    try:
        data = json.loads((path / JOB_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    defaults = {"job_id": path.name, "original_name": path.name, "source": "folder"}
    for key, value in defaults.items():
        if not isinstance(data.get(key), str) or not data[key]:
            data[key] = value
    try:
        return Job(path, JobRecord.from_dict(data))
    except (TypeError, ValueError):
        return Job(path, JobRecord(path.name, path.name, "folder"))
