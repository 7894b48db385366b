"""progress.json while a job runs: where each photo stands, rewritten after every worker event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sharpmld.queue.layout import PROGRESS_FILE
from tests.daemon.fakes import make_rig


def _photos(job: Path) -> dict[str, str]:
    progress: dict[str, Any] = json.loads((job / PROGRESS_FILE).read_text())
    return {p["source"]: p["state"] for p in progress["photos"]}


def test_progress_names_each_photo_with_its_state_as_the_worker_reports(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.worker.become_ready()
    rig.drop_folder(images=3)
    rig.until_dispatched()
    (working,) = rig.jobs("working")
    first, second, third = (t.rel for t in rig.worker.sent[-1].images)

    rig.worker.start_image(0)
    rig.step(0.1)
    assert _photos(working) == {first: "working", second: "waiting", third: "waiting"}

    # The worker starts the next photo before the last one's files are written and reported.
    rig.worker.start_image(1)
    rig.step(0.1)
    assert _photos(working) == {first: "working", second: "working", third: "waiting"}
    rig.worker.finish_image(0)
    rig.step(0.1)
    assert _photos(working) == {first: "done", second: "working", third: "waiting"}

    rig.worker.fail_image(1)
    rig.worker.start_image(2)
    rig.step(0.1)
    progress = json.loads((working / PROGRESS_FILE).read_text())
    assert progress["images_done"] == 2 and progress["current"] == third
    assert [p["source"] for p in progress["photos"]] == [first, second, third]  # the worker's order
    assert _photos(working) == {first: "done", second: "failed", third: "working"}
