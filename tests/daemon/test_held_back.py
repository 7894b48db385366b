"""Entries the daemon holds back are named, with the reason, in ``sharpmld status``."""

from __future__ import annotations

from pathlib import Path

from sharpmld.cli.status import format_status, gather
from tests.daemon.fakes import make_rig


def test_a_leftover_part_file_holds_its_folder_for_the_configured_time_and_status_says_so(
    tmp_path: Path,
) -> None:
    rig = make_rig(tmp_path, intake={"in_progress_seconds": 6.0})  # settle 0.5: 6 s rules
    rig.worker.become_ready()
    folder = rig.drop_folder("trip", images=1)
    (folder / "IMG_1.jpg.part").write_bytes(b"half a photo")
    (rig.root / "inbox" / "movie.mp4.part").write_bytes(b"x")
    rig.step()

    info = gather(rig.daemon.config)
    held = {h["name"]: h for h in info["held_back"]}
    assert set(held) == {"trip", "movie.mp4.part"}
    assert held["trip"]["reason"] == "in_progress"
    assert held["trip"]["path"] == "trip/IMG_1.jpg.part"
    assert "6 s" in held["trip"]["message"] and "in_progress_seconds" in held["trip"]["message"]
    assert held["trip"]["until"] is not None and held["movie.mp4.part"]["until"] is None
    assert held["movie.mp4.part"]["reason"] == "temp_name"
    text = format_status(info)
    assert "held back" in text
    assert "trip/IMG_1.jpg.part" in text and "movie.mp4.part" in text

    rig.step(5.9)
    assert rig.worker.sent == []  # not before its time ...
    rig.until_dispatched()  # ... and not 120 s either
    assert rig.now - 1000.0 <= 7.0
    info = gather(rig.daemon.config)
    assert [h["name"] for h in info["held_back"]] == ["movie.mp4.part"]


def test_no_held_entries_no_status_section(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.step()
    info = gather(rig.daemon.config)
    assert info["held_back"] == []
    assert "held back" not in format_status(info)
