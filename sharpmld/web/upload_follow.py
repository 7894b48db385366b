"""Which job an upload became: the daemon names a job only when it claims it from the inbox.

The job id is ``<claim time>-<slug of the inbox name>-<random>`` and the job's record keeps
the inbox name as ``original_name``, so the newest job claimed since the upload with that
name is the one. Only ids with the right slug are opened, so a long ``done/`` costs a
listing, not a read per job.
"""

from __future__ import annotations

import json
import os
from typing import Any

from sharpmld.queue.jobid import is_job_id, slug
from sharpmld.queue.layout import JOB_FILE, Layout

STAMP_CHARS = len("20260101T000000Z")


def follow(layout: Layout, name: str, since: str) -> dict[str, Any]:
    """``{"state", "id"}`` of the upload now in the inbox as ``name``; state "unknown" when
    it is neither there nor claimed yet (a claim in progress, or a name never uploaded)."""
    if not name or "/" in name or name.startswith(".") or "\0" in name:
        return {"state": "unknown", "id": None}
    if os.path.lexists(layout.inbox / name):
        return {"state": "inbox", "id": None}
    wanted = slug(name)
    found: tuple[str, str] | None = None
    for state in ("working", "done", "failed"):
        try:
            names = os.listdir(layout.state(state))
        except FileNotFoundError:
            continue
        for job_id in names:
            if not is_job_id(job_id) or job_id[:STAMP_CHARS] < since:
                continue
            if job_id[STAMP_CHARS + 1 :].rsplit("-", 1)[0] != wanted:
                continue
            if found is not None and job_id <= found[1]:
                continue
            if _original_name(layout, state, job_id) == name:
                found = (state, job_id)
    if found is None:
        return {"state": "unknown", "id": None}
    return {"state": found[0], "id": found[1]}


def _original_name(layout: Layout, state: str, job_id: str) -> str | None:
    try:
        data = json.loads((layout.state(state) / job_id / JOB_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("original_name") if isinstance(data, dict) else None
