"""The daemon stepped in-process: a fake worker, a fake clock, a real queue on a temp root.

Each test scripts what the worker does and moves the clock by hand, so the daemon's decisions
(claim, dispatch, retry, time out, hand back, drain, recover) are checked without a
subprocess and without waiting.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from sharpmld.core.errors import EngineCrash, Timeout
from sharpmld.daemon.loop import Daemon
from sharpmld.daemon.status import status_path
from sharpmld.queue.claim import claim
from sharpmld.queue.layout import Layout
from sharpmld.queue.lease import Owner, read_lease
from sharpmld.supervisor import supervisor as sv
from tests.daemon.fakes import JOB_TIMEOUT, FakeWatcher, FakeWorker, Rig, make_config, make_rig
from tests.intake import corpus


def ready_with_job(tmp_path: Path, **queue: Any) -> Rig:
    rig = make_rig(tmp_path, **queue)
    rig.worker.become_ready()
    rig.drop_folder()
    rig.until_dispatched()
    return rig


def result_of(job: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((job / "result.json").read_text())
    return data


def test_a_ready_folder_is_claimed_dispatched_and_finished(tmp_path: Path) -> None:
    rig = ready_with_job(tmp_path)
    (working,) = rig.jobs("working")
    assert not (rig.root / "inbox" / "kitchen").exists()
    assert read_lease(working) is not None and read_lease(working).owner == rig.daemon.owner  # type: ignore[union-attr]
    assert [t.rel for t in rig.worker.sent[0].images] == ["IMG_0.jpg"]
    status = json.loads(status_path(rig.root / ".sharpmld").read_text())
    assert status["current_job"] == working.name and status["engine"] == sv.BUSY

    rig.worker.finish_images()
    rig.step()
    (done,) = rig.jobs("done")
    assert done.name == working.name and rig.jobs("working") == []
    result = result_of(done)
    assert result["status"] == "done" and result["attempts"] == 1
    assert rig.daemon.current is None


def test_intake_waits_for_the_worker_to_be_ready(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.drop_folder()
    for _ in range(5):
        rig.step(1.0)
    assert rig.worker.sent == [] and rig.jobs("working") == []
    rig.worker.become_ready()
    rig.step(0.1)
    assert len(rig.worker.sent) == 1


def test_a_worker_lost_mid_job_is_retried_on_the_next_worker(tmp_path: Path) -> None:
    rig = ready_with_job(tmp_path)
    rig.worker.die("crash")
    rig.step(0.1)
    assert rig.daemon.redispatch and len(rig.worker.sent) == 1
    rig.step(1.0)  # the worker is not back yet: nothing is sent
    assert len(rig.worker.sent) == 1
    rig.worker.become_ready()
    rig.step(0.1)
    assert len(rig.worker.sent) == 2
    rig.worker.finish_images()
    rig.step(0.1)
    (done,) = rig.jobs("done")
    history = result_of(done)["history"]
    assert [h["outcome"] for h in history] == ["worker_crash", "done"]


def test_a_worker_lost_on_the_last_attempt_fails_the_job(tmp_path: Path) -> None:
    rig = ready_with_job(tmp_path, max_attempts=1)
    rig.worker.die("crash")
    rig.step(0.1)
    (failed,) = rig.jobs("failed")
    assert json.loads((failed / "error.json").read_text())["code"] == EngineCrash.code


def test_a_job_that_runs_over_its_time_fails_with_timeout(tmp_path: Path) -> None:
    rig = ready_with_job(tmp_path)
    rig.step(JOB_TIMEOUT / 2)
    assert rig.jobs("failed") == []
    rig.step(JOB_TIMEOUT)  # the fake clock, not the wall clock, decides
    (failed,) = rig.jobs("failed")
    assert json.loads((failed / "error.json").read_text())["code"] == Timeout.code
    assert rig.daemon.current is None


def test_a_full_disk_hands_the_job_back_and_pauses_intake(tmp_path: Path) -> None:
    rig = ready_with_job(tmp_path)
    rig.worker.finish_images(ok=False, code="disk_full")
    rig.step(0.1)
    assert (rig.root / "inbox" / "kitchen" / "IMG_0.jpg").is_file()
    assert rig.jobs("working") == [] and rig.jobs("failed") == []
    assert rig.daemon.paused_reason(rig.now) == "low_disk"
    wait = float(rig.daemon.config.get("intake", "disk_full_retry_seconds"))
    for _ in range(3):
        rig.step(1.0)
    assert len(rig.worker.sent) == 1, "claimed again while the disk-full back-off runs"
    rig.step(wait)  # the back-off is over: claimed again at this step
    assert len(rig.worker.sent) == 2


def test_a_stop_drains_the_job_in_flight_then_hands_it_back_after_the_grace(tmp_path: Path) -> None:
    rig = ready_with_job(tmp_path, shutdown_grace_seconds=20.0)
    rig.daemon.request_stop()
    rig.step(0.1)
    assert not rig.daemon.finished and rig.daemon.paused_reason(rig.now) == "shutting_down"
    rig.step(10.0)
    assert not rig.daemon.finished
    rig.step(10.0)
    assert rig.daemon.finished
    rig.daemon.stop()
    assert (rig.root / "inbox" / "kitchen" / "IMG_0.jpg").is_file()
    assert rig.jobs("working") == [] and rig.worker.state == sv.STOPPED
    assert not status_path(rig.root / ".sharpmld").exists()


def test_a_job_that_finishes_during_the_drain_ends_in_done(tmp_path: Path) -> None:
    rig = ready_with_job(tmp_path)
    rig.daemon.request_stop()
    rig.step(0.1)
    rig.worker.finish_images()
    rig.step(0.1)
    assert rig.daemon.finished and len(rig.jobs("done")) == 1
    rig.daemon.stop()
    assert list((rig.root / "inbox").iterdir()) == []


def test_a_second_stop_request_stops_at_once(tmp_path: Path) -> None:
    rig = ready_with_job(tmp_path)
    rig.daemon.request_stop()
    rig.step(0.1)
    rig.daemon.request_stop()
    rig.step(0.1)
    assert rig.daemon.finished


def test_no_job_is_claimed_once_a_stop_was_requested(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.worker.become_ready()
    rig.daemon.request_stop()
    rig.drop_folder()
    rig.step(1.0)
    assert rig.daemon.finished and rig.worker.sent == []


def test_a_job_orphaned_by_a_dead_daemon_is_recovered_at_start(tmp_path: Path) -> None:
    root = tmp_path / "root"
    layout = Layout(root)
    layout.ensure()
    (layout.inbox / "porch").mkdir()
    corpus.write_jpeg(layout.inbox / "porch" / "a.jpg")
    dead = Owner(socket.gethostname(), 2**22 + 11, 1.0)  # no such process on this host
    orphan = claim(layout, "porch", dead)
    assert orphan is not None and read_lease(orphan.path) is not None

    rig = make_rig(tmp_path)
    rig.worker.become_ready()
    rig.step(0.1)
    assert [r.job_id for r in rig.worker.sent] == [orphan.job_id]
    assert read_lease(orphan.path).owner == rig.daemon.owner  # type: ignore[union-attr]
    rig.worker.finish_images()
    rig.step(0.1)
    assert [p.name for p in rig.jobs("done")] == [orphan.job_id]


def test_the_status_file_shows_why_the_engine_is_unavailable(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.worker.become_unavailable("the checkpoint is missing")
    rig.step(0.1)
    status = json.loads(status_path(rig.root / ".sharpmld").read_text())
    assert status["engine"] == sv.UNAVAILABLE
    assert status["engine_message"] == "the checkpoint is missing"
    assert "counters" not in status
    assert rig.daemon.paused_reason(rig.now) == "engine_unavailable"


def test_run_alternates_the_wait_and_the_step_until_a_burst_is_done(tmp_path: Path) -> None:
    worker = FakeWorker()
    daemon = Daemon(make_config(tmp_path / "root"), burst=True, supervisor=worker, watcher=FakeWatcher())
    ticks = iter(range(1000, 10**6))
    assert daemon.run(clock=lambda: float(next(ticks))) == 0
    assert daemon.finished and worker.stops, "the worker was not stopped on the way out"
    assert not status_path(tmp_path / "root" / ".sharpmld").exists()
