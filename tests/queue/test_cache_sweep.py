"""A daemon killed while it writes a reuse-index entry leaves a temp file that nothing else
looks at; the next daemon removes it, but never one a live daemon sharing the root is writing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sharpmld.core import fsio
from sharpmld.queue import cache_index
from sharpmld.queue.lease import Owner

KEY = "8d" + "0" * 62


def _leftover(cache_dir: Path, tag: str = "") -> Path:
    """What a write of ``KEY``'s entry cut short between its temp file and the rename leaves."""
    final = cache_dir / KEY[:2] / f"{KEY}.json"
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = fsio.temp_name_for(final, tag)
    temp.write_text("{")
    return temp


def test_a_dead_writers_leftover_goes_and_a_live_writers_stays(tmp_path: Path) -> None:
    me = Owner.current()
    dead = Owner(me.host, 2**22 + 23, 1.0, me.host_id)  # a pid no process has
    gone = _leftover(tmp_path, dead.tag())
    writing = _leftover(tmp_path, me.tag())
    cache_index.store(tmp_path, KEY, {"outputs": {}}, owner=me)

    removed = cache_index.sweep_leftovers(tmp_path, server_now=time.time(), stale_after=60)

    assert removed == [gone]
    assert writing.exists()
    assert (tmp_path / KEY[:2] / f"{KEY}.json").exists()


def test_an_unnamed_leftover_goes_only_once_older_than_the_lease_timeout(tmp_path: Path) -> None:
    fresh = _leftover(tmp_path)
    old = _leftover(tmp_path)
    long_ago = time.time() - 3600
    os.utime(old, (long_ago, long_ago))

    removed = cache_index.sweep_leftovers(tmp_path, server_now=time.time(), stale_after=60)

    assert removed == [old]
    assert fresh.exists()


def test_the_temp_file_of_a_store_names_its_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    me = Owner.current()
    seen: list[str] = []
    real = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append(os.path.basename(os.fspath(src)))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    cache_index.store(tmp_path, KEY, {"outputs": {}}, owner=me)
    (name,) = seen
    writer = Owner.from_tag(name)
    assert writer is not None and writer.pid == me.pid and writer.is_alive(), name


def test_no_cache_folder_is_nothing_to_sweep(tmp_path: Path) -> None:
    assert cache_index.sweep_leftovers(tmp_path / "absent", server_now=time.time(), stale_after=60) == []
