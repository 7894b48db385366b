"""The shared fixture helpers make what the product itself reads (they are used by bench too)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sharpmld.cli.codes import RET_NO_DAEMON
from sharpmld.core.config import load
from sharpmld.queue.jobid import is_job_id
from sharpmld.queue.layout import Layout
from sharpmld.queue.record import Job
from tests.support import harness, roots


def test_a_fabricated_finished_job_is_a_job_to_the_product(root: Path) -> None:
    layout = Layout(root)
    layout.ensure()
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    job = roots.finished_job(layout, "kitchen", {"input/a.jpg": b"x", "a.ply": b"y"}, when=when)
    assert job.parent == layout.done and is_job_id(job.name) and job.name.startswith("20260102T030405Z-")
    record = Job.load(job).record
    assert (record.job_id, record.original_name) == (job.name, "kitchen")
    assert (job / "input" / "a.jpg").read_bytes() == b"x"
    status = harness.cli(root, "status", "--root", str(root), "--json")
    assert status.returncode == RET_NO_DAEMON, status.stderr  # it reads the tree without a daemon
    assert json.loads(status.stdout)["counts"] == {"inbox": 0, "working": 0, "done": 1, "failed": 0}


def test_the_config_overrides_merge_per_key(tmp_path: Path, checkpoint: Path) -> None:
    harness.write_config(tmp_path / "r", checkpoint, log={"level": "info"}, intake={"observer": "polling"})
    cfg = load(tmp_path / "r", environ={})
    assert cfg.get("model", "factory") == roots.TINY_FACTORY and cfg.checkpoint == checkpoint
    assert (cfg.get("log", "format"), cfg.get("log", "level")) == ("json", "info")
    assert (cfg.get("intake", "observer"), cfg.get("intake", "settle_seconds")) == ("polling", 0.5)
