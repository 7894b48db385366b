"""Delivering into the inbox: hidden while built, one rename, nothing left when it fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sharpmld.core import fsio
from sharpmld.queue.delivery import Staging
from sharpmld.queue.layout import Layout


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
