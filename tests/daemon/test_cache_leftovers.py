"""A daemon killed while it indexed outputs for reuse leaves a temp file in the index; the next
daemon to start on the root removes it (the crash test found these after random kills)."""

from __future__ import annotations

from pathlib import Path

from sharpmld.core import fsio
from sharpmld.queue.lease import Owner
from tests.daemon.fakes import make_rig


def test_a_daemon_starting_removes_a_dead_daemons_half_written_index_entry(tmp_path: Path) -> None:
    me = Owner.current()
    dead = Owner(me.host, 2**22 + 29, 1.0, me.host_id)
    shard = tmp_path / "root" / ".sharpmld" / "cache" / "ab"
    shard.mkdir(parents=True)
    leftover = shard / f"{fsio.TEMP_PREFIX}0badf00d-{dead.tag()}-ab{'1' * 62}.json"
    leftover.write_text("{")

    make_rig(tmp_path)

    assert not leftover.exists()
