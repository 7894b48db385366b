"""Roots for the tests and the benchmarks: a configuration for the tiny model, and job folders
laid out through the product's own Layout, record and id code.

One place, so that a fixture cannot drift from what the daemon writes: when the layout or the
record changes, the tests' and the benchmarks' fabricated jobs change with it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import tomli_w

from sharpmld.queue.jobid import new_job_id
from sharpmld.queue.layout import INPUT_DIR, JOB_FILE, JOB_LOG, RESULT_FILE, Layout
from sharpmld.queue.record import JobRecord

TINY_FACTORY = "tiny_sharp:create"


def write_config(root: Path, checkpoint: Path, **sections: dict[str, Any]) -> Path:
    """``root/sharpmld.toml`` for the tiny model on the CPU, JSON logs, metrics on a free port;
    ``sections`` add or override keys, section by section."""
    data: dict[str, Any] = {
        "model": {"factory": TINY_FACTORY, "checkpoint": str(checkpoint), "device": "cpu"},
        "log": {"format": "json"},
        "metrics": {"port": 0},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "sharpmld.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def finished_job(
    layout: Layout,
    original_name: str,
    files: dict[str, bytes],
    *,
    when: datetime | None = None,
    state: str = "done",
) -> Path:
    """A job folder in ``state`` as the daemon leaves it: the person's files under input/,
    the record, a result and a log line. ``files`` maps paths (relative to the job folder;
    ``input/...`` for originals) to their bytes. Written plainly, not fsynced: for fixtures."""
    job_id = new_job_id(original_name, when)
    job = layout.state(state) / job_id
    (job / INPUT_DIR).mkdir(parents=True)
    for rel, data in files.items():
        path = job / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    record = JobRecord(job_id, original_name, "folder", attempts=1)
    (job / JOB_FILE).write_text(json.dumps(record.to_dict()))
    images = [{"source": Path(rel).name} for rel in files if rel.startswith(f"{INPUT_DIR}/")]
    result = {"job_id": job_id, "original_name": original_name, "status": state, "images": images}
    (job / RESULT_FILE).write_text(json.dumps(result))
    (job / JOB_LOG).write_text(json.dumps({"event": "job claimed", "job_id": job_id}) + "\n")
    return job
