"""The daemon's smaller parts, each on its own: the wait, the stop policy, housekeeping."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from sharpmld.core import fsio
from sharpmld.daemon.housekeeping import Housekeeping
from sharpmld.daemon.stopping import StopPolicy
from sharpmld.daemon.waiting import Waiter
from sharpmld.queue.layout import Layout
from sharpmld.queue.lease import Owner, this_host_id
from tests.daemon.fakes import make_config


def test_a_poke_ends_the_wait_and_says_so() -> None:
    waiter = Waiter()
    waiter.open()
    try:
        waiter.poke()
        started = time.monotonic()
        assert waiter.wait(30.0, None) is True
        assert time.monotonic() - started < 5.0
        assert waiter.wait(0.0, None) is False  # the poke was consumed
    finally:
        waiter.close()


def test_the_wait_is_bounded_by_its_timeout() -> None:
    waiter = Waiter()
    waiter.open()
    try:
        started = time.monotonic()
        assert waiter.wait(0.05, None) is False
        assert time.monotonic() - started < 5.0
    finally:
        waiter.close()


def test_a_worker_fd_with_data_ends_the_wait_without_a_poke() -> None:
    waiter = Waiter()
    waiter.open()
    r, w = os.pipe()
    try:
        os.write(w, b"{}\n")
        started = time.monotonic()
        assert waiter.wait(30.0, r) is False
        assert time.monotonic() - started < 5.0
    finally:
        waiter.close()
        os.close(r)
        os.close(w)


def test_a_nudge_ends_the_wait_without_asking_for_a_rescan() -> None:
    waiter = Waiter()
    waiter.open()
    try:
        waiter.nudge()  # the broker's thread: a commit was noticed
        started = time.monotonic()
        assert waiter.wait(30.0, None) is False
        assert time.monotonic() - started < 5.0
        waiter.nudge()
        waiter.poke()
        assert waiter.wait(30.0, None) is True  # a poke among nudges still asks for a rescan
    finally:
        waiter.close()


def test_a_poke_before_open_is_ignored() -> None:
    Waiter().poke()  # no pipe yet: must not raise


def test_the_first_request_drains_until_the_grace_and_the_second_stops_now() -> None:
    with structlog.testing.capture_logs() as logs:
        policy = StopPolicy(grace=10.0, log=structlog.get_logger())
        assert not policy.finished(0.0, in_flight=False, between_attempts=False)
        policy.request()
        policy.step(100.0)
        policy.step(101.0)
    assert [e["event"] for e in logs].count("stopping: no new jobs; finishing the one in flight") == 1
    assert not policy.finished(105.0, in_flight=True, between_attempts=False)
    assert policy.finished(105.0, in_flight=False, between_attempts=False)
    assert policy.finished(105.0, in_flight=True, between_attempts=True)
    assert policy.finished(110.0, in_flight=True, between_attempts=False)
    policy.request()
    assert policy.finished(101.0, in_flight=True, between_attempts=False)


def test_a_signal_only_counts_a_request_and_the_old_handlers_come_back() -> None:
    waiter = Waiter()
    waiter.open()
    policy = StopPolicy(grace=1.0, log=structlog.get_logger())
    before = signal.getsignal(signal.SIGTERM)
    policy.install(waiter.signal_fd)
    try:
        signal.raise_signal(signal.SIGTERM)
        assert policy.requests == 1 and policy.deadline is None  # the loop decides, later
    finally:
        policy.uninstall()
        waiter.close()
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.fixture
def housekeeping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Housekeeping, list[str]]:
    cfg = make_config(tmp_path / "root")
    layout = Layout(cfg.root)
    layout.ensure()
    sweeps: list[str] = []

    def sweep(*_: Any, **__: Any) -> list[Path]:
        sweeps.append("sweep")
        return []

    monkeypatch.setattr("sharpmld.daemon.housekeeping.retention.sweep", sweep)
    hk = Housekeeping(cfg, layout, structlog.get_logger())
    hk.start()
    return hk, sweeps


def test_housekeeping_runs_what_is_due_by_the_clock_it_is_given(
    housekeeping: tuple[Housekeeping, list[str]],
) -> None:
    hk, sweeps = housekeeping
    hk.step(5.0)
    hk.step(6.0)
    assert sweeps == ["sweep"]
    hk.step(5.0 + 3600.0)
    assert sweeps == ["sweep", "sweep"]


def test_a_full_disk_pauses_claiming_for_the_retry_time_on_the_given_clock(
    housekeeping: tuple[Housekeeping, list[str]],
) -> None:
    hk, _ = housekeeping
    wait = float(hk.config.get("intake", "disk_full_retry_seconds"))
    hk.disk_filled_up(1000.0)
    assert hk.disk_paused(1000.0 + wait - 1)
    assert not hk.disk_paused(1000.0 + wait + 1)


def test_low_disk_is_said_once_and_once_more_when_it_recovers(
    housekeeping: tuple[Housekeeping, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    hk, _ = housekeeping
    free = {"bytes": 0}
    monkeypatch.setattr(Layout, "free_bytes", lambda self: free["bytes"])
    with structlog.testing.capture_logs() as logs:
        hk.step(0.0)
        hk.step(10.0)
        assert hk.disk_paused(10.0)
        free["bytes"] = 1 << 50
        hk.step(20.0)
    assert not hk.disk_paused(20.0)
    assert [e["log_level"] for e in logs] == ["warning", "info"]


def test_a_killed_daemons_status_and_temp_files_are_swept_at_start(tmp_path: Path) -> None:
    """A daemon killed while rewriting its status file leaves a temp file: the next start
    on the same host removes it, and the dead daemon's status file, but not a live one's."""
    import json
    import socket
    import subprocess
    import sys

    from sharpmld.daemon.status import sweep_dead_status

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead = int(gone.stdout)
    host = socket.gethostname()
    state = tmp_path / "state"
    state.mkdir()
    dead_status = state / f"daemon-{host}-{dead}.json"
    dead_status.write_text(json.dumps({"pid": dead, "started": 1.0}))
    dead_temp = state / f".sharpmld-tmp-0123abcd-daemon-{host}-{dead}.json"
    dead_temp.write_text('{"pid"')
    parent = os.getppid()
    live_status = state / f"daemon-{host}-{parent}.json"
    live_status.write_text(json.dumps({"pid": parent}))
    other_host = state / f"daemon-elsewhere-{dead}.json"
    other_host.write_text("{}")

    removed = sweep_dead_status(state)

    assert sorted(removed) == sorted([dead_status.name, dead_temp.name])
    assert live_status.exists() and other_host.exists()


def test_housekeeping_removes_an_upload_whose_writer_was_killed_at_its_first_step(
    housekeeping: tuple[Housekeeping, list[str]],
) -> None:
    hk, _ = housekeeping
    dead = Owner(socket.gethostname(), 4_194_000, 12345.0, this_host_id())  # no such process
    left = fsio.temp_name_for(hk.layout.inbox / "upload", dead.tag())
    left.mkdir()
    (left / "IMG_1.jpg").write_bytes(b"\xff\xd8 half a photo")
    hk.step(5.0)
    assert not left.exists()
