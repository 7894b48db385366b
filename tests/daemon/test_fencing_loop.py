"""Two daemons on one shared root, stepped in-process: fencing and clock skew.

Daemon A plays a daemon on another machine (its owner carries another machine id); B is this
machine's. Their clocks are injected: A's wall clock runs behind, B's ahead, each by more than
the lease timeout, for every clock read they make while they step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sharpmld.daemon.claiming import ORPHAN_CHECK_SECONDS
from sharpmld.queue import recovery
from sharpmld.queue.layout import LEASE_FILE
from sharpmld.queue.lease import Owner, read_lease
from tests.daemon.fakes import Rig, make_rig

LEASE_TIMEOUT = 60.0
SKEW = 5 * LEASE_TIMEOUT
REAL_TIME = time.time


@contextlib.contextmanager
def clock_off_by(seconds: float, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every wall-clock read in this block is ``seconds`` off (a machine with a wrong clock)."""
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: REAL_TIME() + seconds)
        yield


def on_another_machine(rig: Rig, skew: float) -> None:
    rig.daemon.owner = dataclasses.replace(Owner.current(), host_id="machine-a")
    rig.daemon.wall_clock = lambda: REAL_TIME() + skew


def snapshot(folder: Path) -> dict[str, tuple[int, float]]:
    out = {}
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            st = os.stat(Path(dirpath) / name)
            out[str(Path(dirpath, name).relative_to(folder))] = (st.st_size, st.st_mtime)
    return out


def test_daemons_whose_clocks_differ_by_more_than_the_lease_timeout_run_a_job_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = make_rig(tmp_path, lease_timeout_seconds=LEASE_TIMEOUT, heartbeat_seconds=5.0)
    on_another_machine(a, -SKEW)
    b = make_rig(tmp_path, lease_timeout_seconds=LEASE_TIMEOUT, heartbeat_seconds=5.0)
    a.worker.become_ready()
    b.worker.become_ready()
    a.drop_folder()
    with clock_off_by(-SKEW, monkeypatch):
        a.until_dispatched()
    for _ in range(4):  # A works on, heartbeating; B looks for orphans every few seconds
        with clock_off_by(-SKEW, monkeypatch):
            a.step(ORPHAN_CHECK_SECONDS)
        with clock_off_by(+SKEW, monkeypatch):
            b.step(ORPHAN_CHECK_SECONDS + 1)
    assert b.worker.sent == [], "B adopted a job whose owner was alive and heartbeating"
    a.worker.finish_images()
    with clock_off_by(-SKEW, monkeypatch):
        a.step(0.1)
    assert len(a.jobs("done")) == 1 and a.jobs("working") == []


def test_a_paused_owner_that_resumes_after_adoption_stops_and_touches_nothing(
    tmp_path: Path,
) -> None:
    a = make_rig(tmp_path, lease_timeout_seconds=LEASE_TIMEOUT, heartbeat_seconds=5.0)
    on_another_machine(a, 0.0)
    a.worker.become_ready()
    a.drop_folder(images=2)
    a.until_dispatched()
    (job,) = a.jobs("working")

    # A is paused (laptop lid shut) past the lease timeout; B, on this machine, adopts.
    then = REAL_TIME() - 2 * LEASE_TIMEOUT
    os.utime(job / LEASE_FILE, (then, then))
    me = Owner.current()
    layout = a.daemon.layout
    assert list(recovery.find_orphans(layout, me, lease_timeout=LEASE_TIMEOUT)) == [job]
    assert recovery.adopt(job, me, lease_timeout=LEASE_TIMEOUT, state_dir=layout.state_dir)
    (job / "IMG_0.ply").write_bytes(b"the adopter's output")
    before = snapshot(job)

    # A wakes up: its worker reports the job finished, and its heartbeat is long overdue.
    a.worker.finish_images()
    a.step(2 * LEASE_TIMEOUT)
    a.step(1.0)

    assert a.daemon.current is None, "A still thinks it runs the job"
    assert a.worker.stops, "A left its worker writing into the adopter's job folder"
    assert a.jobs("done") == [] and a.jobs("failed") == [] and a.jobs("working") == [job]
    assert snapshot(job) == before, "A wrote into a job it no longer holds"
    lease = read_lease(job)
    assert lease is not None and lease.owner.same_process(me)
