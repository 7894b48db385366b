"""An inbox entry the daemon cannot read or move stays with that entry: it is held back with
its reason, said once, and the other entries go on. In-process tests run as root, so the
permission errors are injected where the filesystem would raise them for another user."""

from __future__ import annotations

import errno
import os
import pwd
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import structlog

from sharpmld.cli.status import gather
from sharpmld.intake import scanner as scanner_module
from sharpmld.observers.events import Observer
from tests.daemon.fakes import make_rig


def _deny_under(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """``lstat`` of anything inside ``folder`` fails as it does for mode 000 and another user."""
    real = Path.lstat

    def lstat(self: Path) -> os.stat_result:
        if folder in self.parents:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "lstat", lstat)


def test_an_unreadable_folder_is_held_back_once_and_the_others_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "someone-else")  # as sudo -u leaves it: not whose rights apply
    monkeypatch.setenv("LOGNAME", "someone-else")
    rig = make_rig(tmp_path)
    rig.worker.become_ready()
    locked = rig.drop_folder("a_locked", images=1)
    rig.drop_folder("b_good", images=1)
    _deny_under(monkeypatch, locked)
    with structlog.testing.capture_logs() as logs:
        rig.until_dispatched()
        for _ in range(5):
            rig.step(1.0)
    assert [r.job_id.split("-")[1] for r in rig.worker.sent] == ["b_good"]
    errors = [e for e in logs if e["event"] == "internal error in the daemon loop"]
    assert errors == [], errors
    said = [e for e in logs if e.get("name") == "a_locked" and e["log_level"] == "warning"]
    assert len(said) == 1, [e["event"] for e in logs]
    held = {h["name"]: h for h in gather(rig.daemon.config)["held_back"]}
    assert held["a_locked"]["reason"] == "unreadable"
    assert "chmod" in held["a_locked"]["message"]
    assert f"({pwd.getpwuid(os.geteuid()).pw_name})" in held["a_locked"]["message"]
    assert "someone-else" not in held["a_locked"]["message"]
    assert locked.exists()


def test_a_folder_the_daemon_cannot_move_is_left_in_place_without_debris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path)
    rig.worker.become_ready()
    theirs = rig.drop_folder("a_theirs", images=1)
    rig.drop_folder("b_mine", images=1)
    real = os.access

    def access(path: Any, mode: int, **kw: Any) -> bool:
        if Path(path) == theirs and mode & os.W_OK:
            return False
        return real(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    real_rename = os.rename

    def rename(src: Any, dst: Any, **kw: Any) -> None:
        if Path(src) == theirs:  # renaming a folder needs write permission on it
            raise PermissionError(errno.EACCES, "Permission denied", str(src))
        real_rename(src, dst, **kw)

    monkeypatch.setattr(os, "rename", rename)
    with structlog.testing.capture_logs() as logs:
        rig.until_dispatched()
        for _ in range(5):
            rig.step(1.0)
    assert [r.job_id.split("-")[1] for r in rig.worker.sent] == ["b_mine"]
    assert [e for e in logs if e["event"] == "internal error in the daemon loop"] == []
    said = [e for e in logs if e.get("name") == "a_theirs" and e["log_level"] == "warning"]
    assert len(said) == 1, [e["event"] for e in logs]
    assert theirs.exists()
    assert len(rig.jobs("working")) == 1, rig.jobs("working")  # only b_mine's
    held = {h["name"]: h for h in gather(rig.daemon.config)["held_back"]}
    assert held["a_theirs"]["reason"] == "not_writable"


def test_the_loop_reaches_its_stop_step_whatever_a_scan_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path)
    rig.worker.become_ready()

    def broken(self: Any, now: float) -> list[Any]:
        raise RuntimeError("a bug in the scan")

    monkeypatch.setattr(scanner_module.InboxScanner, "scan", broken)
    rig.daemon.request_stop()
    for _ in range(5):
        rig.step(1.0)
        rig.daemon.scan_due = 0.0
    assert rig.daemon.finished


def test_a_refused_claim_rename_leaves_no_debris_and_is_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path)
    rig.worker.become_ready()
    theirs = rig.drop_folder("a_theirs", images=1)
    real_rename = os.rename
    attempts: list[Path] = []

    def rename(src: Any, dst: Any, **kw: Any) -> None:
        if Path(src) == theirs:  # refused although the access check said yes (ACLs, flags)
            attempts.append(Path(src))
            raise PermissionError(errno.EPERM, "Operation not permitted", str(src))
        real_rename(src, dst, **kw)

    monkeypatch.setattr(os, "rename", rename)
    with structlog.testing.capture_logs() as logs:
        for _ in range(10):
            rig.step(1.0)
    assert [e for e in logs if e["event"] == "internal error in the daemon loop"] == []
    assert len(attempts) == 1
    assert rig.jobs("working") == []
    assert theirs.exists()
    held = {h["name"]: h for h in gather(rig.daemon.config)["held_back"]}
    assert held["a_theirs"]["reason"] == "not_writable"


def test_a_burst_run_ends_although_an_entry_it_cannot_read_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path)
    rig.daemon.burst = True
    rig.worker.become_ready()
    locked = rig.drop_folder("a_locked", images=1)
    _deny_under(monkeypatch, locked)
    for _ in range(10):
        rig.step(1.0)
    assert rig.daemon.finished, "a burst run waited forever for an entry it cannot take"
    assert locked.exists()


class _Scans(Observer):
    """Keeps what each scan told the observers about stuck entries."""

    def __init__(self) -> None:
        self.stuck: list[dict[str, int]] = []

    def on_scan(self, *, stuck: Mapping[str, int] | None = None, **_: Any) -> None:
        self.stuck.append(dict(stuck or {}))


def test_observers_are_told_how_many_entries_are_stuck_and_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path)
    scans = _Scans()
    rig.daemon.events.observers.append(scans)
    rig.worker.become_ready()
    locked = rig.drop_folder("a_locked", images=1)
    _deny_under(monkeypatch, locked)
    for _ in range(3):
        rig.step(1.0)
    assert scans.stuck and scans.stuck[-1] == {"unreadable": 1}, scans.stuck
