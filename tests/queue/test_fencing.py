"""Shared-root leases that hold across machines: the file server's clock, machine ids, fencing.

Each test builds the situation on a real folder; "another machine" is an owner with another
machine id, and its clock is the heartbeat it writes into the lease (a skewed one here).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from sharpmld.queue import recovery
from sharpmld.queue.claim import claim
from sharpmld.queue.layout import LEASE_FILE, Layout
from sharpmld.queue.lease import Owner, holds, read_lease, server_time, write_lease

LEASE_TIMEOUT = 60.0


def elsewhere(pid: int = 4242) -> Owner:
    """A daemon on another machine (host names may even be equal: cloned Mac minis)."""
    me = Owner.current()
    return Owner(me.host, pid, 1000.0, "another-machine-id")


def age_lease(job_dir: Path, seconds: float) -> None:
    """The lease file was last rewritten ``seconds`` ago by the file server's clock."""
    then = time.time() - seconds
    os.utime(job_dir / LEASE_FILE, (then, then))


def test_a_live_remote_owner_with_a_skewed_clock_keeps_its_job(layout: Layout) -> None:
    """Its heartbeat says 10 minutes ago (its clock is behind), but it rewrote the lease just
    now: the file's time says it lives, and the job is not adopted."""
    owner = elsewhere()
    job = claim(layout, "trip", owner)
    assert job is not None
    write_lease(job.path, owner, now=time.time() - 10 * LEASE_TIMEOUT)
    assert list(recovery.find_orphans(layout, Owner.current(), lease_timeout=LEASE_TIMEOUT)) == []
    taken = recovery.adopt(job.path, Owner.current(), lease_timeout=LEASE_TIMEOUT, state_dir=layout.state_dir)
    assert taken is None
    assert holds(job.path, owner)


def test_a_remote_owner_whose_clock_runs_ahead_still_loses_a_stale_job(layout: Layout) -> None:
    """Its heartbeat claims the future, but the file has not been rewritten for too long."""
    owner = elsewhere()
    job = claim(layout, "trip", owner)
    assert job is not None
    write_lease(job.path, owner, now=time.time() + 10 * LEASE_TIMEOUT)
    age_lease(job.path, 2 * LEASE_TIMEOUT)
    me = Owner.current()
    assert list(recovery.find_orphans(layout, me, lease_timeout=LEASE_TIMEOUT)) == [job.path]


def test_the_server_clock_is_the_probe_files_time(layout: Layout) -> None:
    me = Owner.current()
    before = time.time()
    first = server_time(layout.state_dir, me)
    assert before - 2 <= first <= time.time() + 2  # a local disk: the local clock
    assert server_time(layout.state_dir, me) >= first
    probes = [p.name for p in layout.state_dir.iterdir() if p.name.startswith("clock-")]
    assert len(probes) == 1, probes  # one small file per machine, rewritten in place


def test_a_same_named_clone_is_not_judged_by_pid(layout: Layout) -> None:
    """A cloned machine with this host's name and a pid that is alive here (ours): still
    another machine, so its job is not taken over while its lease is fresh..."""
    me = Owner.current()
    clone = Owner(me.host, me.pid, me.started + 5000, "the-clone")
    job = claim(layout, "trip", clone)
    assert job is not None
    assert list(recovery.find_orphans(layout, me, lease_timeout=LEASE_TIMEOUT)) == []


def test_a_renamed_host_still_recovers_its_dead_daemons_job_at_once(layout: Layout) -> None:
    """...and this machine, renamed since (macOS renames with the network), knows its own dead
    daemon by machine id: no waiting out the lease timeout."""
    me = Owner.current()
    dead = Owner("old-name.local", 2**22 + 5, 1.0, me.host_id)
    job = claim(layout, "trip", dead)
    assert job is not None
    assert list(recovery.find_orphans(layout, me, lease_timeout=LEASE_TIMEOUT)) == [job.path]


def test_an_adopted_owner_is_fenced_even_after_overwriting_the_lease(layout: Layout) -> None:
    paused = elsewhere()
    job = claim(layout, "trip", paused)
    assert job is not None and holds(job.path, paused)
    age_lease(job.path, 2 * LEASE_TIMEOUT)  # paused past the lease timeout
    me = Owner.current()
    assert recovery.adopt(job.path, me, lease_timeout=LEASE_TIMEOUT, state_dir=layout.state_dir)
    assert not holds(job.path, paused) and holds(job.path, me)
    write_lease(job.path, paused)  # it woke and wrote a heartbeat before it checked
    assert not holds(job.path, paused), "the adoption marker must still fence it"
    lease = read_lease(job.path)
    assert lease is not None and lease.owner.same_process(paused)


def test_an_adopter_that_died_before_writing_its_lease_does_not_block_the_job_for_ever(
    layout: Layout,
) -> None:
    """Killed between its adoption marker and its lease: the lease still names the first dead
    owner, and the marker of that owner exists. The next daemon must still get the job."""
    me = Owner.current()
    first = Owner(me.host, 2**22 + 31, 1.0, me.host_id)  # dead, on this host
    job = claim(layout, "trip", first)
    assert job is not None
    died_adopting = Owner(me.host, 2**22 + 32, 2.0, me.host_id)  # dead too
    (job.path / first.adoption_marker()).write_text(json.dumps(dataclasses.asdict(died_adopting)))
    taken = recovery.adopt(job.path, me, lease_timeout=LEASE_TIMEOUT, state_dir=layout.state_dir)
    assert taken is not None, "the dead adopter's marker blocked the job"
    assert holds(job.path, me) and not holds(job.path, first)
    again = recovery.adopt(job.path, me, lease_timeout=LEASE_TIMEOUT, state_dir=layout.state_dir)
    assert again is None


def test_a_marker_whose_maker_is_alive_still_wins(layout: Layout) -> None:
    """A daemon between its marker and its lease right now keeps the job."""
    me = Owner.current()
    first = Owner(me.host, 2**22 + 33, 1.0, me.host_id)
    job = claim(layout, "trip", first)
    assert job is not None
    (job.path / first.adoption_marker()).write_text(json.dumps(dataclasses.asdict(me)))  # alive
    other = Owner("other.local", 7, 7.0, "another-machine")
    assert recovery.adopt(job.path, other, lease_timeout=LEASE_TIMEOUT, state_dir=layout.state_dir) is None
    empty = claim_again(layout, "trip2")
    (empty.path / Owner(me.host, 2**22 + 34, 1.0, me.host_id).adoption_marker()).touch()
    fresh = recovery.adopt(empty.path, other, lease_timeout=LEASE_TIMEOUT, state_dir=layout.state_dir)
    assert fresh is None, "a marker made a moment ago, still empty, must not be taken over"


def claim_again(layout: Layout, name: str) -> recovery.Job:
    (layout.inbox / name).mkdir()
    (layout.inbox / name / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    me = Owner.current()
    job = claim(layout, name, Owner(me.host, 2**22 + 34, 1.0, me.host_id))
    assert job is not None
    return job
