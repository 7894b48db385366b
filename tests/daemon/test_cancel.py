"""Cancelling: the loop stepped in-process with a fake clock and the scripted worker."""

from __future__ import annotations

import json
from pathlib import Path

from sharpmld.cli.cancel import cancel
from sharpmld.queue.layout import CANCEL_FILE
from sharpmld.supervisor import supervisor as sv
from tests.daemon.fakes import Rig, make_rig


def _running(tmp_path: Path, images: int = 3) -> tuple[Rig, Path]:
    rig = make_rig(tmp_path)
    rig.worker.become_ready()
    rig.drop_folder(images=images)
    rig.until_dispatched()
    (working,) = rig.jobs("working")
    return rig, working


def _error(job: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((job / "error.json").read_text())  # type: ignore[no-any-return]


def test_a_queued_folder_is_cancelled_before_the_daemon_claims_it(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.worker.become_ready()
    rig.drop_folder()
    rig.step(0.1)  # seen, still settling
    outcome = cancel(rig.daemon.config, "kitchen")
    assert outcome is not None and outcome.state == "failed"
    for _ in range(5):
        rig.step(1.0)
    assert rig.worker.sent == [] and rig.jobs("working") == []
    (failed,) = rig.jobs("failed")
    assert _error(failed)["code"] == "cancelled"
    assert sorted(p.name for p in (failed / "input").iterdir()) == ["IMG_0.jpg"]


def test_a_running_job_stops_at_the_next_photo_and_keeps_the_finished_ones(tmp_path: Path) -> None:
    rig, working = _running(tmp_path)
    rig.worker.finish_image(0)
    rig.step(0.1)
    outcome = cancel(rig.daemon.config, working.name)
    assert outcome is not None and outcome.state == "requested"
    rig.step(0.1)  # seen; the photo in flight is let finish
    assert rig.jobs("working") == [working] and rig.worker.abandoned == []
    rig.worker.finish_image(1)
    rig.step(0.1)
    (failed,) = rig.jobs("failed")
    assert failed.name == working.name and rig.daemon.current is None
    assert rig.worker.abandoned == [rig.now]  # the third photo is never started
    error = _error(failed)
    assert error["code"] == "cancelled" and error["details"] == {"by": "cli", "now": False}
    result = json.loads((failed / "result.json").read_text())
    assert [i["source"] for i in result["images"]] == ["IMG_0.jpg", "IMG_1.jpg"]
    assert sorted(p.name for p in (failed / "input").iterdir()) == ["IMG_0.jpg", "IMG_1.jpg", "IMG_2.jpg"]
    assert not (failed / CANCEL_FILE).exists()
    assert "cancelled" in (failed / "ERROR.txt").read_text()


def test_cancel_now_kills_the_worker_and_the_job_ends_failed_with_originals(tmp_path: Path) -> None:
    rig, working = _running(tmp_path)
    before = {p.name: p.read_bytes() for p in (working / "input").iterdir()}
    rig.worker.finish_image(0)
    rig.step(0.1)
    assert cancel(rig.daemon.config, working.name[:20], by="web", now=True) is not None
    rig.step(0.1)
    assert rig.worker.abandoned == [rig.now] and rig.worker.state == sv.STOPPED
    (failed,) = rig.jobs("failed")
    assert _error(failed)["code"] == "cancelled" and _error(failed)["details"]["now"] is True
    assert {p.name: p.read_bytes() for p in (failed / "input").iterdir()} == before
    record = json.loads((failed / "job.json").read_text())
    assert record["history"][-1]["outcome"] == "cancelled"
    assert record["attempts"] == 0  # a cancel is not the job's fault: a retry gets every try
    # The next job gets a worker as usual.
    rig.worker.become_ready()
    rig.drop_folder("porch")
    rig.until_dispatched()
    assert rig.worker.sent[-1].job_id != working.name


def test_a_job_that_finishes_with_the_request_pending_is_done_and_sheds_it(tmp_path: Path) -> None:
    rig, working = _running(tmp_path, images=1)
    (working / CANCEL_FILE).write_text('{"by": "cli", "now": false}')
    rig.worker.finish_images()
    rig.step(0.1)
    (done,) = rig.jobs("done")
    assert not (done / CANCEL_FILE).exists()
