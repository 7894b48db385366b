"""The state machine's moves, each one rename, checked on a real folder tree."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from sharpmld.core.errors import ClaimRefused
from sharpmld.queue import recovery, retention, transitions
from sharpmld.queue.claim import claim
from sharpmld.queue.layout import Layout
from sharpmld.queue.lease import Lease, Owner, owner_is_gone, read_lease, write_lease
from sharpmld.queue.record import Job, JobRecord


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    out = Layout(tmp_path / "root")
    out.ensure()
    return out


def test_claim_moves_a_folder_with_one_rename(layout: Layout) -> None:
    (layout.inbox / "kitchen").mkdir()
    (layout.inbox / "kitchen" / "a.jpg").write_bytes(b"x")
    job = claim(layout, "kitchen", Owner.current(), priority=3)
    assert job is not None
    assert not (layout.inbox / "kitchen").exists()
    assert (job.input_dir / "a.jpg").read_bytes() == b"x"
    record = json.loads((job.path / "job.json").read_text())
    assert record["original_name"] == "kitchen" and record["source"] == "folder"
    assert record["priority"] == 3 and record["attempts"] == 0
    assert read_lease(job.path) is not None
    assert [p.name for p in layout.working.iterdir()] == [job.job_id]


def test_claim_wraps_a_loose_file(layout: Layout) -> None:
    (layout.inbox / "photo.JPG").write_bytes(b"y")
    job = claim(layout, "photo.JPG", Owner.current())
    assert job is not None and job.record.source == "file"
    assert "-photo-" in job.job_id
    assert (job.input_dir / "photo.JPG").read_bytes() == b"y"


def test_a_lost_race_leaves_nothing_behind(layout: Layout) -> None:
    (layout.inbox / "once").mkdir()
    first = claim(layout, "once", Owner.current())
    second = claim(layout, "once", Owner.current())
    assert first is not None and second is None
    assert [p.name for p in layout.working.iterdir()] == [first.job_id]


def test_a_refused_claim_raises_claim_refused_and_leaves_nothing_behind(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    (layout.inbox / "trip").mkdir()
    (layout.inbox / "trip" / "a.png").write_bytes(b"x")
    real = os.rename

    def rename(src: Any, dst: Any) -> None:
        if Path(src) == layout.inbox / "trip":  # a folder this user may not write
            raise PermissionError(errno.EACCES, "Permission denied", str(src))
        real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(ClaimRefused) as caught:
        claim(layout, "trip", Owner.current())
    assert caught.value.code == "not_writable"
    assert list(layout.working.iterdir()) == []
    assert (layout.inbox / "trip" / "a.png").exists()


def test_finish_and_hand_back(layout: Layout) -> None:
    (layout.inbox / "a").mkdir()
    (layout.inbox / "a" / "x.png").write_bytes(b"1")
    job = claim(layout, "a", Owner.current())
    assert job is not None
    (layout.inbox / "a").mkdir()  # someone drops another "a" meanwhile
    back = transitions.hand_back(layout, job)
    assert back == layout.inbox / "a (2)"
    assert (back / "x.png").read_bytes() == b"1"
    assert not job.path.exists()

    job = claim(layout, "a (2)", Owner.current())
    assert job is not None
    done = transitions.finish(layout, job, "done")
    assert done.path == layout.done / job.job_id
    assert not (done.path / "lease.json").exists()


def test_hand_back_never_replaces_a_file_dropped_meanwhile(layout: Layout) -> None:
    (layout.inbox / "p.jpg").write_bytes(b"old")
    job = claim(layout, "p.jpg", Owner.current())
    assert job is not None
    (layout.inbox / "p.jpg").write_bytes(b"new")
    back = transitions.hand_back(layout, job)
    assert back == layout.inbox / "p (2).jpg"
    assert (layout.inbox / "p.jpg").read_bytes() == b"new"
    assert back.read_bytes() == b"old"


def test_leases_tell_live_owners_from_dead_ones(layout: Layout) -> None:
    me = Owner.current()
    assert me.is_alive()
    now = time.time()
    assert not owner_is_gone(Lease(me, now), lease_timeout=60, server_now=now)
    reused = Owner(me.host, me.pid, me.started - 1000, me.host_id)  # same pid, another start
    assert owner_is_gone(Lease(reused, now), lease_timeout=60, server_now=now)
    remote = Owner("elsewhere.example", 1, 0.0, "another-machine")
    assert not owner_is_gone(Lease(remote, 0.0, written=now - 30), lease_timeout=60, server_now=now)
    assert owner_is_gone(Lease(remote, 0.0, written=now - 90), lease_timeout=60, server_now=now)
    assert owner_is_gone(None, lease_timeout=60, server_now=now)


def test_recovery_adopts_each_orphan_once_and_cleans_outputs(layout: Layout) -> None:
    (layout.inbox / "j").mkdir()
    (layout.inbox / "j" / "a.png").write_bytes(b"a")
    dead = Owner(Owner.current().host, 2**22 + 17, 1.0)
    job = claim(layout, "j", dead)
    assert job is not None
    (job.path / "a.ply").write_bytes(b"partial")
    orphans = list(recovery.find_orphans(layout, Owner.current(), lease_timeout=60))
    assert orphans == [job.path]
    adopted = recovery.adopt(job.path, Owner.current(), lease_timeout=60, state_dir=layout.state_dir)
    assert adopted is not None
    again = recovery.adopt(job.path, Owner.current(), lease_timeout=60, state_dir=layout.state_dir)
    assert again is None  # a second adopter loses
    assert not (job.path / "a.ply").exists()
    assert (job.input_dir / "a.png").read_bytes() == b"a"
    assert list(recovery.find_orphans(layout, Owner.current(), lease_timeout=60)) == []


def test_recovery_removes_a_claim_that_never_happened(layout: Layout) -> None:
    job_dir = layout.working / "20260101T000000Z-x-abcd"
    job_dir.mkdir()
    Job(
        job_dir,
        JobRecord(job_dir.name, "x", "folder"),
    ).save()
    write_lease(job_dir, Owner(Owner.current().host, 2**22 + 19, 1.0))
    (path,) = recovery.find_orphans(layout, Owner.current(), lease_timeout=60)
    assert not recovery.has_input(path)


def test_retention_sweeps_only_old_finished_jobs(layout: Layout) -> None:
    old = time.time() - 40 * 86400
    for state in ("done", "failed", "working"):
        for age, name in ((old, "20260101T000000Z-old-aaaa"), (time.time(), "20260101T000000Z-new-bbbb")):
            path = layout.state(state) / name
            path.mkdir()
            os.utime(path, (age, age))
    (layout.inbox / "20260101T000000Z-old-aaaa").mkdir()
    os.utime(layout.inbox / "20260101T000000Z-old-aaaa", (old, old))
    removed = retention.sweep(layout, done_days=30, failed_days=90)
    assert removed == [layout.done / "20260101T000000Z-old-aaaa"]
    assert (layout.failed / "20260101T000000Z-old-aaaa").exists()  # 40 days < 90
    assert (layout.working / "20260101T000000Z-old-aaaa").exists()
    assert (layout.inbox / "20260101T000000Z-old-aaaa").exists()
    assert retention.sweep(layout, done_days=0, failed_days=0) == []


def test_a_job_survives_adopters_that_die_before_doing_anything(layout: Layout) -> None:
    """Claimed, owner dies; adopted, adopter dies before charging an attempt; adopted again."""
    (layout.inbox / "j").mkdir()
    (layout.inbox / "j" / "a.png").write_bytes(b"a")
    host = Owner.current().host
    job = claim(layout, "j", Owner(host, 2**22 + 21, 1.0))
    assert job is not None
    first = recovery.adopt(
        job.path, Owner(host, 2**22 + 22, 2.0), lease_timeout=60, state_dir=layout.state_dir
    )  # this adopter "dies" too
    assert first is not None
    (path,) = recovery.find_orphans(layout, Owner.current(), lease_timeout=60)
    second = recovery.adopt(path, Owner.current(), lease_timeout=60, state_dir=layout.state_dir)
    assert second is not None, "a marker left by a dead adopter must not block the next one"
    assert (
        recovery.adopt(path, Owner.current(), lease_timeout=60, state_dir=layout.state_dir) is None
    )  # but two live adopters never both win
