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


def _deny_open(monkeypatch: Any, name: str) -> None:
    """Opening ``name`` fails as it does for a folder the daemon's user may not read (the
    suite runs as root, which reads anything)."""
    import errno
    import os

    real = os.open

    def guarded(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if os.path.basename(os.fspath(path)) == name:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", guarded)


def test_an_unreadable_subfolder_is_named_in_the_result(tmp_path: Path, monkeypatch: Any) -> None:
    rig = make_rig(tmp_path)
    rig.worker.become_ready()
    folder = rig.drop_folder("kitchen")
    (folder / "locked").mkdir()
    (folder / "locked" / "IMG_9.jpg").write_bytes((folder / "IMG_0.jpg").read_bytes())
    _deny_open(monkeypatch, "locked")
    rig.until_dispatched()
    rig.worker.finish_images()
    result = step_until(rig, "done")
    assert [(r["source"], r["code"]) for r in result["rejected"]] == [("locked", "permission_denied")]
    assert "chmod" in result["rejected"][0]["message"]


def test_a_job_with_nothing_readable_fails_naming_what_could_not_be_read(
    tmp_path: Path, monkeypatch: Any
) -> None:
    rig = make_rig(tmp_path)
    rig.worker.become_ready()
    folder = rig.drop_folder("kitchen", images=0)
    (folder / "locked").mkdir()
    (folder / "locked" / "IMG_9.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 100)
    _deny_open(monkeypatch, "locked")
    result = step_until(rig, "failed")
    assert result["error"]["code"] == "no_valid_images"
    assert [r["code"] for r in result["rejected"]] == ["permission_denied"]
    (job,) = rig.jobs("failed")
    assert "locked" in (job / "ERROR.txt").read_text()
