"""A lease released by a live owner: the job is recoverable, once per release."""

from __future__ import annotations

import time
from pathlib import Path

from sharpmld.queue import recovery
from sharpmld.queue.claim import claim
from sharpmld.queue.layout import Layout
from sharpmld.queue.lease import Owner, owner_is_gone, read_lease, release_lease


def test_a_released_job_is_adopted_although_its_owner_lives(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "root")
    layout.ensure()
    (layout.inbox / "a.jpg").write_bytes(b"x")
    me = Owner.current()
    job = claim(layout, "a.jpg", me)
    assert job is not None
    assert list(recovery.find_orphans(layout, me, lease_timeout=60)) == []
    for n in (1, 2):  # a job released, adopted, and released again is adopted again
        release_lease(job.path, me, now=float(n))
        assert owner_is_gone(read_lease(job.path), lease_timeout=60, server_now=time.time())
        assert list(recovery.find_orphans(layout, me, lease_timeout=60)) == [job.path]
        assert recovery.adopt(job.path, me, lease_timeout=60, state_dir=layout.state_dir) is not None
        assert not owner_is_gone(read_lease(job.path), lease_timeout=60, server_now=time.time())
