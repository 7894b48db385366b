"""The jobs as the web app shows them, read from the tree on each request (the tree is the truth)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sharpmld.intake.names import is_in_progress, is_junk
from sharpmld.queue.jobid import is_job_id
from sharpmld.queue.layout import (
    ERROR_JSON,
    INPUT_DIR,
    JOB_FILE,
    PROGRESS_FILE,
    RESULT_FILE,
    STATES,
    Layout,
)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _summary(layout: Layout, state: str, name: str) -> dict[str, Any]:
    path = layout.state(state) / name
    job: dict[str, Any] = {"id": name, "state": state, "name": name, "photos": _photo_count(path)}
    if state == "inbox":
        return job
    record = _json(path / JOB_FILE)
    job["name"] = str(record.get("name") or record.get("original_name") or name)
    if state == "working":
        job["progress"] = _json(path / PROGRESS_FILE)
    result = _json(path / RESULT_FILE)
    if result:
        job["result"] = result
    if state == "failed":
        error = _json(path / ERROR_JSON)
        job["error"] = {"code": error.get("code"), "message": error.get("message")}
    return job


def _photo_count(path: Path) -> int:
    """The photos a job holds: its ``input/`` once claimed, the folder itself in the inbox."""
    folder = path / INPUT_DIR if (path / INPUT_DIR).is_dir() else path
    if not folder.is_dir() or folder.is_symlink():
        return 1 if path.is_file() else 0
    count = 0
    for _top, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = [d for d in dirs if not is_junk(d)]
        count += sum(1 for f in files if not is_junk(f) and not is_in_progress(f))
    return count


def list_jobs(root: Path) -> list[dict[str, Any]]:
    """Every job in inbox, working, done and failed, each state in name order."""
    layout = Layout(root)
    jobs = []
    for state in STATES:
        try:
            names = sorted(os.listdir(layout.state(state)))
        except FileNotFoundError:
            continue
        for name in names:
            if state == "inbox":
                if is_junk(name) or is_in_progress(name):
                    continue
            elif not is_job_id(name):
                continue
            jobs.append(_summary(layout, state, name))
    return jobs


def find_job(root: Path, job_id: str) -> dict[str, Any] | None:
    """One job by its id (or inbox name) with the files it holds, or None."""
    layout = Layout(root)
    for state in STATES:
        if state != "inbox" and not is_job_id(job_id):
            continue
        path = layout.state(state) / job_id
        if "/" in job_id or job_id.startswith(".") or not os.path.lexists(path) or path.is_symlink():
            continue
        job = _summary(layout, state, job_id)
        job["files"] = _files(path, f"{state}/{job_id}")
        return job
    return None


def _files(path: Path, prefix: str) -> list[str]:
    """The regular files under a job folder (no links followed), as paths for ``/files/``."""
    found: list[str] = []
    if not path.is_dir():
        return found
    for top, dirs, files in os.walk(path, followlinks=False):
        rel = os.path.relpath(top, path)
        dirs.sort()
        for f in sorted(files):
            full = Path(top) / f
            if full.is_symlink() or not full.is_file():
                continue
            found.append(f"{prefix}/{f}" if rel == "." else f"{prefix}/{rel}/{f}")
    return found
