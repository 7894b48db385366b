"""Defects of the daemon's loop, each pinned by the test written before its fix."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
import structlog

from sharpmld.daemon.claiming import ORPHAN_CHECK_SECONDS
from sharpmld.observers.metrics import Metrics
from sharpmld.queue import recovery
from sharpmld.queue.lease import read_lease, write_lease
from tests.daemon.fakes import Rig, make_rig


def ready_with_job(tmp_path: Path, **queue: Any) -> Rig:
    rig = make_rig(tmp_path, **queue)
    rig.worker.become_ready()
    rig.drop_folder()
    rig.until_dispatched()
    return rig


def test_the_lease_is_refreshed_while_a_job_drains(tmp_path: Path) -> None:
    rig = ready_with_job(tmp_path, heartbeat_seconds=5.0, shutdown_grace_seconds=60.0)
    run = rig.daemon.current
    assert run is not None
    rig.daemon.request_stop()
    rig.step(0.1)
    write_lease(run.job.path, rig.daemon.owner, now=1.0)  # as if the last beat were long ago
    rig.step(6.0)
    lease = read_lease(run.job.path)
    assert lease is not None and lease.heartbeat > 1.0, "no heartbeat while draining"


def test_intake_paused_reads_shutting_down_while_a_job_drains(tmp_path: Path) -> None:
    rig = ready_with_job(tmp_path)
    metrics = Metrics(rig.daemon.layout)
    rig.daemon.events.observers.append(metrics)
    rig.daemon.request_stop()
    rig.step(0.1)
    value = metrics.registry.get_sample_value("sharpmld_intake_paused", {"reason": "shutting_down"})
    assert value == 1.0


def test_a_job_that_cannot_be_closed_after_a_bug_is_released_for_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = ready_with_job(tmp_path)
    run = rig.daemon.current
    assert run is not None

    def bug(event: dict[str, Any]) -> bool:
        raise RuntimeError("a bug in the runner")

    def cannot_fail(error: Exception) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(run, "on_event", bug)
    monkeypatch.setattr(run, "fail", cannot_fail)
    rig.worker.finish_images()
    with structlog.testing.capture_logs() as logs:
        rig.step(0.1)
    closing = [e for e in logs if e.get("job_id") == run.job.job_id and e.get("exc_info")]
    assert closing, f"the second error was swallowed: {[e['event'] for e in logs]}"
    assert rig.daemon.current is None
    orphans = list(
        recovery.find_orphans(rig.daemon.layout, rig.daemon.owner, lease_timeout=rig.daemon.lease_timeout)
    )
    assert orphans == [run.job.path], "the job still sits under a live lease"

    rig.worker.become_ready()  # the error path stopped the worker; a new one comes up
    rig.step(ORPHAN_CHECK_SECONDS + 1)  # recovery takes it: the next worker gets it again
    assert [r.job_id for r in rig.worker.sent] == [run.job.job_id] * 2


def test_an_inbox_watcher_that_fails_to_start_is_retried_with_a_backoff(tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        rig = make_rig(tmp_path, watcher_failures=2)
        assert not rig.watcher.running
        rig.step(0.1)
        assert rig.watcher.starts == 1, "retried before any back-off"
        for _ in range(10):
            rig.step(1.0)
    assert rig.watcher.running, "the watcher was never started again"
    assert rig.watcher.starts == 3
    said = [e for e in logs if "watcher" in e["event"] and e["log_level"] == "warning"]
    assert len(said) == 1, said
