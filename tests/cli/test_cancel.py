"""``retry`` on old records, and ``cancel`` of a queued job, called in-process on a temp root."""

from __future__ import annotations

import json
from pathlib import Path

from sharpmld.cli.submit import retry
from sharpmld.core.config import load

OLD = "20250101T000000Z-old-abcd"


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for state in ("inbox", "working", "done", "failed", ".sharpmld"):
        (root / state).mkdir(parents=True)
    return root


def test_retry_accepts_an_old_job_json_without_source(tmp_path: Path) -> None:
    root = _root(tmp_path)
    job = root / "failed" / OLD
    (job / "input").mkdir(parents=True)
    (job / "input" / "a.jpg").write_bytes(b"\xff\xd8\xff photo")
    # Written by an early release: no "source", no "original_name".
    (job / "job.json").write_text(json.dumps({"job_id": OLD, "attempts": 1}))
    back = retry(load(root=str(root)), OLD)
    assert back is not None and back.parent == root / "inbox"
    assert (back / "a.jpg").read_bytes() == b"\xff\xd8\xff photo"
    assert not job.exists()
