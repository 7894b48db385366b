"""The orphan sweep and another daemon's claim in progress: staging folders it must leave."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sharpmld.core import fsio
from sharpmld.queue import recovery
from sharpmld.queue.layout import Layout
from sharpmld.queue.lease import Owner, write_lease

LEASE_TIMEOUT = 60.0


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    out = Layout(tmp_path / "root")
    out.ensure()
    return out


def staging(layout: Layout, age: float = 0.0) -> Path:
    """A staging folder as ``claim`` makes it, caught before its lease is written."""
    path = fsio.temp_name_for(layout.working / "20260101-000000-kitchen-abcd")
    path.mkdir()
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def sweep(layout: Layout) -> list[Path]:
    return list(recovery.find_orphans(layout, Owner.current(), lease_timeout=LEASE_TIMEOUT))


def test_a_young_staging_folder_without_a_lease_is_left_alone(layout: Layout) -> None:
    path = staging(layout)
    assert sweep(layout) == []
    assert path.is_dir(), "the sweep deleted a claim another daemon is still preparing"


def test_a_staging_folder_whose_creator_lives_is_left_alone_however_old(layout: Layout) -> None:
    path = staging(layout)
    write_lease(path, Owner.current())
    then = time.time() - 10 * LEASE_TIMEOUT
    os.utime(path, (then, then))
    sweep(layout)
    assert path.is_dir()


def test_an_old_staging_folder_without_a_lease_is_swept(layout: Layout) -> None:
    path = staging(layout, age=2 * LEASE_TIMEOUT)
    sweep(layout)
    assert not path.exists()


def test_a_staging_folder_of_a_dead_creator_is_swept(layout: Layout) -> None:
    path = staging(layout)
    write_lease(path, Owner(Owner.current().host, 2**22 + 7, 1.0, Owner.current().host_id))  # no such process
    sweep(layout)
    assert not path.exists()


def test_a_claim_names_its_staging_folder_for_its_owner(layout: Layout) -> None:
    me = Owner.current()
    name = fsio.temp_name_for(layout.working / f"{me.tag()}-20260101-000000-kitchen-abcd").name
    assert Owner.from_tag(name) == Owner(me.host, me.pid, round(me.started, 1), me.host_id)
    assert Owner.from_tag(name.replace(me.tag()[1:9], "00000000")) is None  # another host's


def test_a_staging_folder_without_a_lease_whose_named_creator_died_is_swept_at_once(
    layout: Layout,
) -> None:
    dead = Owner(Owner.current().host, 2**22 + 7, 1.0, Owner.current().host_id)  # no such process
    gone = fsio.temp_name_for(layout.working / f"{dead.tag()}-20260101-000000-kitchen-abcd")
    gone.mkdir()
    mine = fsio.temp_name_for(layout.working / f"{Owner.current().tag()}-20260101-000000-den-abcd")
    mine.mkdir()
    sweep(layout)
    assert not gone.exists(), "a dead daemon's half-made claim stayed behind"
    assert mine.is_dir()
