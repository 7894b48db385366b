"""This machine's id: made once, kept, shared by the daemons of one machine, new on a clone."""

from __future__ import annotations

import json
from pathlib import Path

from sharpmld.core.hostid import HOST_ID_FILE, host_id


def test_the_id_is_made_once_and_kept(tmp_path: Path) -> None:
    first = host_id(tmp_path / "state", fingerprint=lambda: "machine-a")
    assert first and host_id(tmp_path / "state", fingerprint=lambda: "machine-a") == first
    saved = json.loads((tmp_path / "state" / HOST_ID_FILE).read_text())
    assert saved == {"id": first, "machine": "machine-a"}


def test_a_cloned_disk_on_another_machine_takes_a_new_id(tmp_path: Path) -> None:
    original = host_id(tmp_path, fingerprint=lambda: "machine-a")
    clone = host_id(tmp_path, fingerprint=lambda: "machine-b")
    assert clone != original
    assert host_id(tmp_path, fingerprint=lambda: "machine-b") == clone


def test_two_machines_without_a_fingerprint_still_differ(tmp_path: Path) -> None:
    assert host_id(tmp_path / "a", fingerprint=str) != host_id(tmp_path / "b", fingerprint=str)


def test_an_unwritable_folder_gives_an_id_from_the_hardware(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    first = host_id(blocked / "sub", fingerprint=lambda: "machine-a")
    assert first == host_id(blocked / "sub", fingerprint=lambda: "machine-a")
    assert first != host_id(blocked / "sub", fingerprint=lambda: "machine-b")


def test_a_damaged_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / HOST_ID_FILE).write_text("{not json")
    made = host_id(tmp_path, fingerprint=lambda: "m")
    assert json.loads((tmp_path / HOST_ID_FILE).read_text())["id"] == made
