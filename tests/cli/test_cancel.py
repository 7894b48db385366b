"""``retry`` on old records, and ``cancel`` of a queued job, called in-process on a temp root."""

from __future__ import annotations

import json
from pathlib import Path

from sharpmld.cli.cancel import CANCEL_FILE, cancel
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


def test_cancel_queued_folder_moves_it_to_failed_with_code_cancelled(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "inbox" / "garden").mkdir()
    (root / "inbox" / "garden" / "a.jpg").write_bytes(b"\xff\xd8\xff photo")
    outcome = cancel(load(root=str(root)), "garden", by="web")
    assert outcome is not None and outcome.state == "failed"
    assert outcome.path.parent == root / "failed"
    assert not (root / "inbox" / "garden").exists()
    assert (outcome.path / "input" / "a.jpg").read_bytes() == b"\xff\xd8\xff photo"
    error = json.loads((outcome.path / "error.json").read_text())
    assert error["code"] == "cancelled" and error["details"]["by"] == "web"
    text = (outcome.path / "ERROR.txt").read_text()
    assert "cancelled" in text and "web app" in text
    assert not (outcome.path / "lease.json").exists()
    assert list((root / "working").iterdir()) == []


def test_cancel_queued_file_keeps_the_original(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "inbox" / "one.jpg").write_bytes(b"\xff\xd8\xff one")
    outcome = cancel(load(root=str(root)), "one.jpg")
    assert outcome is not None and outcome.state == "failed"
    assert (outcome.path / "input" / "one.jpg").read_bytes() == b"\xff\xd8\xff one"
    assert json.loads((outcome.path / "error.json").read_text())["details"]["by"] == "cli"


def test_cancel_running_job_writes_a_request_for_the_daemon(tmp_path: Path) -> None:
    root = _root(tmp_path)
    running = root / "working" / OLD
    (running / "input").mkdir(parents=True)
    outcome = cancel(load(root=str(root)), OLD[:20], now=True)
    assert outcome is not None and outcome.state == "requested"
    request = json.loads((running / CANCEL_FILE).read_text())
    assert request["by"] == "cli" and request["now"] is True


def test_cancel_unknown_or_hidden_name_matches_nothing(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "inbox" / ".hidden").mkdir()
    assert cancel(load(root=str(root)), ".hidden") is None
    assert cancel(load(root=str(root)), "nope") is None
    assert (root / "inbox" / ".hidden").is_dir()
