"""Every file a person dropped is accounted for in result.json: used, rejected or ignored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.daemon.fakes import Rig, make_rig


def step_until(rig: Rig, state: str, steps: int = 30) -> dict[str, Any]:
    """Step the loop until one job has ended in ``state``; its result.json."""
    for _ in range(steps):
        rig.step(1.0)
        if (rig.root / state).is_dir() and rig.jobs(state):
            (job,) = rig.jobs(state)
            result: dict[str, Any] = json.loads((job / "result.json").read_text())
            return result
    raise AssertionError(f"no job reached {state}/")


def test_a_loose_job_toml_is_named_not_lost(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.worker.become_ready()
    (rig.root / "inbox").mkdir(exist_ok=True)
    (rig.root / "inbox" / "job.toml").write_text("priority = 5\n")
    result = step_until(rig, "failed")
    assert result["error"]["code"] == "no_valid_images"
    (rejected,) = result["rejected"]
    assert (rejected["source"], rejected["code"]) == ("job.toml", "unsupported_type"), result
    assert "folder" in rejected["message"], rejected["message"]  # what to do: put it in one
    (job,) = rig.jobs("failed")
    assert "job.toml" in (job / "ERROR.txt").read_text()


def test_a_job_toml_in_a_folder_is_listed_as_used(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.worker.become_ready()
    folder = rig.drop_folder("kitchen")
    (folder / "job.toml").write_text("priority = 5\n")
    rig.until_dispatched()
    rig.worker.finish_images()
    result = step_until(rig, "done")
    assert result["settings"]["job_toml"] == "job.toml"
    sources = [i["source"] for i in result["images"]] + [r["source"] for r in result["rejected"]]
    assert "job.toml" not in sources + result["ignored"]  # said once, as what it was used for


def test_without_a_job_toml_the_settings_say_so(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.worker.become_ready()
    rig.drop_folder("kitchen")
    rig.until_dispatched()
    rig.worker.finish_images()
    assert step_until(rig, "done")["settings"]["job_toml"] is None


def test_the_ready_marker_is_listed_as_ignored(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, intake={"ready_marker": "READY"})
    rig.worker.become_ready()
    folder = rig.drop_folder("kitchen")
    (folder / "READY").touch()
    rig.until_dispatched()
    rig.worker.finish_images()
    result = step_until(rig, "done")
    assert result["ignored"] == ["READY"], result
    assert result["rejected"] == []
