"""Finished jobs are read once and again only when they change; the listing stays the truth."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sharpmld.web import jobs
from sharpmld.web.jobs import FinishedSummaries, list_jobs

DONE = "20260501T090000Z-garden-abcd"
OTHER = "20260501T100000Z-porch-beef"


def _finished(root: Path, name: str, gaussians: int) -> Path:
    job = root / "done" / name
    (job / "input").mkdir(parents=True)
    (job / "input" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    (job / "job.json").write_text(json.dumps({"original_name": name.split("-")[1]}))
    (job / "result.json").write_text(json.dumps({"status": "done", "gaussians": gaussians}))
    return job


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for state in ("inbox", "working", "done", "failed"):
        (tmp_path / state).mkdir()
    return tmp_path


def test_a_finished_job_is_read_once_while_it_does_not_change(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _finished(root, DONE, 1)
    _finished(root, OTHER, 2)
    reads: list[str] = []
    real = jobs._summary
    monkeypatch.setattr(
        jobs, "_summary", lambda layout, state, name: reads.append(name) or real(layout, state, name)
    )
    cache = FinishedSummaries()
    first = list_jobs(root, cache)
    assert sorted(reads) == [DONE, OTHER]
    assert list_jobs(root, cache) == first and len(reads) == 2  # nothing read again


def test_a_changed_removed_or_retried_job_is_never_shown_stale(root: Path) -> None:
    job = _finished(root, DONE, 1)
    _finished(root, OTHER, 2)
    cache = FinishedSummaries()
    list_jobs(root, cache)
    # result.json replaced the way the daemon writes files: temp name, then rename.
    (job / ".result.json.tmp").write_text(json.dumps({"status": "done", "gaussians": 7}))
    os.replace(job / ".result.json.tmp", job / "result.json")
    by_id = {j["id"]: j for j in list_jobs(root, cache)}
    assert by_id[DONE]["result"]["gaussians"] == 7
    # Retention deleted one job; the other was retried into the inbox.
    for path in sorted((root / "done" / OTHER).rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (root / "done" / OTHER).rmdir()
    os.rename(job, root / "inbox" / "garden")
    assert [(j["state"], j["id"]) for j in list_jobs(root, cache)] == [("inbox", "garden")]
