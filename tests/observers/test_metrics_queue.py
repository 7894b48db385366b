"""The per-state job gauges follow a job as it moves, not only at the next inbox scan."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sharpmld.observers.metrics import Metrics
from sharpmld.queue.jobid import new_job_id
from sharpmld.queue.layout import Layout


def _jobs(metrics: Metrics, state: str) -> float | None:
    return metrics.registry.get_sample_value("sharpmld_queue_jobs", {"state": state})


def _move(layout: Layout, job_id: str, src: str, dst: str) -> None:
    os.rename(layout.state(src) / job_id, layout.state(dst) / job_id)


def test_a_job_failed_right_after_its_claim_shows_in_failed_before_the_next_scan(tmp_path: Path) -> None:
    # The daemon scans, then claims a job and fails it at validation in the same step; the
    # next scan is up to scan_interval_seconds away, and the gauge must not wait for it.
    layout = Layout(tmp_path / "root")
    layout.ensure()
    metrics = Metrics(layout)
    metrics.on_scan(duration=0.0, waiting=1, settling=0, oldest_age=0.0)
    assert (_jobs(metrics, "working"), _jobs(metrics, "failed")) == (0, 0)

    job_id = new_job_id("text")
    (layout.state("working") / job_id).mkdir()
    run: Any = SimpleNamespace(error=None, started=0.0, rejected=[], request=None)
    metrics.on_claimed(run, settle_wait=-1, queue_wait=-1)
    assert _jobs(metrics, "working") == 1

    _move(layout, job_id, "working", "failed")
    metrics.on_finished(run, "failed")
    assert (_jobs(metrics, "working"), _jobs(metrics, "failed")) == (0, 1)


def test_a_job_done_shows_in_done_at_once(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "root")
    layout.ensure()
    metrics = Metrics(layout)
    job_id = new_job_id("two")
    (layout.state("working") / job_id).mkdir()
    metrics.on_scan(duration=0.0, waiting=0, settling=0, oldest_age=0.0)
    assert _jobs(metrics, "working") == 1

    _move(layout, job_id, "working", "done")
    run: Any = SimpleNamespace(error=None, started=0.0, rejected=[], request=None)
    metrics.on_finished(run, "done")
    assert (_jobs(metrics, "working"), _jobs(metrics, "done")) == (0, 1)


def test_a_second_job_in_the_same_timestamp_tick_is_counted(tmp_path: Path) -> None:
    # Coarse timestamps: two renames into done/ within one clock tick leave its mtime as it was
    # after the first. Pinning the mtime back reproduces that on any kernel.
    layout = Layout(tmp_path / "root")
    layout.ensure()
    done = layout.state("done")
    metrics = Metrics(layout)
    (done / new_job_id("first")).mkdir()
    tick = done.stat().st_mtime_ns
    metrics.on_scan(duration=0.0, waiting=0, settling=0, oldest_age=0.0)
    assert _jobs(metrics, "done") == 1

    (done / new_job_id("second")).mkdir()
    os.utime(done, ns=(tick, tick))
    metrics.on_scan(duration=0.0, waiting=0, settling=0, oldest_age=0.0)
    assert _jobs(metrics, "done") == 2


def test_entries_stuck_on_permissions_are_counted_by_reason(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "root")
    layout.ensure()
    metrics = Metrics(layout)
    assert metrics.registry.get_sample_value("sharpmld_inbox_stuck_entries", {"reason": "unreadable"}) == 0
    metrics.on_scan(
        duration=0.0, waiting=0, settling=0, oldest_age=0.0, stuck={"unreadable": 2, "not_writable": 1}
    )
    stuck = {
        r: metrics.registry.get_sample_value("sharpmld_inbox_stuck_entries", {"reason": r})
        for r in ("unreadable", "not_writable")
    }
    assert stuck == {"unreadable": 2, "not_writable": 1}
    metrics.on_scan(duration=0.0, waiting=0, settling=0, oldest_age=0.0, stuck={})
    assert metrics.registry.get_sample_value("sharpmld_inbox_stuck_entries", {"reason": "unreadable"}) == 0


def test_the_inbox_bytes_come_from_the_scan_and_the_disk_refresh_does_not_walk_it(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "root")
    layout.ensure()
    (layout.inbox / "trip").mkdir()
    (layout.inbox / "trip" / "a.jpg").write_bytes(b"x" * 5000)  # not walked by the refresh
    (layout.state("working") / "job").mkdir()
    (layout.state("working") / "job" / "b.jpg").write_bytes(b"y" * 300)
    metrics = Metrics(layout)
    metrics.on_scan(duration=0.0, waiting=1, settling=0, oldest_age=0.0, inbox_bytes=4321)
    metrics.refresh_disk()
    value = metrics.registry.get_sample_value
    assert value("sharpmld_state_bytes", {"state": "inbox"}) == 4321
    assert value("sharpmld_state_bytes", {"state": "working"}) == 300
