"""Delivering into the inbox: hidden while built, one rename, nothing left when it fails."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from sharpmld.core import fsio
from sharpmld.queue.delivery import UNOWNED_AFTER_SECONDS, Staging, sweep_abandoned
from sharpmld.queue.layout import Layout
from sharpmld.queue.lease import Owner, this_host_id


def _layout(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path / "root")
    layout.ensure()
    return layout


def test_a_staged_folder_is_hidden_until_committed(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    staging = Staging(layout, "trip")
    (staging.path / "sub").mkdir(parents=True)
    (staging.path / "sub" / "a.jpg").write_bytes(b"photo")
    assert [fsio.is_temp_name(n) for n in os.listdir(layout.inbox)] == [True]
    target = staging.commit("trip")
    assert target == layout.inbox / "trip" and (target / "sub" / "a.jpg").read_bytes() == b"photo"
    assert os.listdir(layout.inbox) == ["trip"]


def test_commit_never_replaces_an_entry_of_the_same_name(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    (layout.inbox / "trip").mkdir()
    (layout.inbox / "trip" / "theirs.jpg").write_bytes(b"theirs")
    staging = Staging(layout, "trip")
    staging.path.mkdir()
    (staging.path / "mine.jpg").write_bytes(b"mine")
    assert staging.commit("trip").name == "trip (2)"
    assert (layout.inbox / "trip" / "theirs.jpg").read_bytes() == b"theirs"


@pytest.mark.parametrize("kind", ["folder", "file", "nothing"])
def test_discard_removes_whatever_was_staged(tmp_path: Path, kind: str) -> None:
    layout = _layout(tmp_path)
    staging = Staging(layout, "x.jpg")
    if kind == "folder":
        staging.path.mkdir()
        (staging.path / "a.jpg").write_bytes(b"a")
    elif kind == "file":
        staging.path.write_bytes(b"a")
    staging.discard()
    assert os.listdir(layout.inbox) == []


def _staged(layout: Layout, owner: Owner | None, age: float = 0.0) -> Path:
    """A staged upload as its writer left it: a folder with a part of a photo."""
    path = fsio.temp_name_for(layout.inbox / "upload", owner.tag() if owner else "")
    path.mkdir()
    (path / "IMG_1.jpg").write_bytes(b"\xff\xd8 half a photo")
    if age:
        old = time.time() - age
        os.utime(path, (old, old))
    return path


def test_a_staging_name_carries_its_writers_mark(tmp_path: Path) -> None:
    staging = Staging(_layout(tmp_path), "trip")
    writer = Owner.from_tag(staging.path.name)
    assert writer is not None and writer.pid == os.getpid() and writer.is_alive()


def test_the_sweep_removes_entries_whose_writer_died_and_keeps_those_being_written(
    tmp_path: Path,
) -> None:
    layout = _layout(tmp_path)
    dead = Owner(socket.gethostname(), 4_194_000, 12345.0, this_host_id())  # no such process
    killed = _staged(layout, dead)
    writing = _staged(layout, Owner.current())
    fresh_unmarked = _staged(layout, None, age=60)
    old_unmarked = _staged(layout, None, age=UNOWNED_AFTER_SECONDS + 60)
    (layout.inbox / "trip").mkdir()  # a person's folder: never the sweep's business
    removed = sweep_abandoned(layout)
    assert sorted(removed) == sorted([killed.name, old_unmarked.name])
    assert writing.is_dir() and fresh_unmarked.is_dir() and (layout.inbox / "trip").is_dir()
    assert not killed.exists() and not old_unmarked.exists()
