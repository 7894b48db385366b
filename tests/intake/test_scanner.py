"""The readiness rule, stepped by hand with an explicit clock."""

from __future__ import annotations

import os
from pathlib import Path

from sharpmld.intake.scanner import STALE_IN_PROGRESS, InboxScanner


def names(entries: list) -> list[str]:
    return [e.name for e in entries]


def test_a_folder_is_ready_once_unchanged_for_the_settle_time(tmp_path: Path) -> None:
    scanner = InboxScanner(tmp_path, settle=2.0, marker="", max_entries=1000)
    (tmp_path / "trip").mkdir()
    (tmp_path / "trip" / "a.jpg").write_bytes(b"1")
    assert scanner.scan(100.0) == []
    assert scanner.next_due() == 102.0
    assert scanner.scan(101.9) == []
    (tmp_path / "trip" / "b.jpg").write_bytes(b"2")  # still arriving: the clock restarts
    assert scanner.scan(102.5) == []
    assert names(scanner.scan(104.5)) == ["trip"]
    assert scanner.settling == 0


def test_in_progress_files_hold_a_folder_until_they_are_stale(tmp_path: Path) -> None:
    scanner = InboxScanner(tmp_path, settle=1.0, marker="", max_entries=1000)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / ".a.jpg.Xy12Ab").write_bytes(b"partial")
    assert scanner.scan(0.0) == []
    assert scanner.scan(50.0) == []
    assert names(scanner.scan(STALE_IN_PROGRESS + 1)) == ["copy"]


def test_a_marker_makes_a_folder_ready_at_once(tmp_path: Path) -> None:
    scanner = InboxScanner(tmp_path, settle=60.0, marker=".ready", max_entries=1000)
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "a.jpg").write_bytes(b"1")
    assert scanner.scan(0.0) == []
    assert scanner.scan(1000.0) == []  # without the marker, never
    (tmp_path / "job" / ".ready").write_bytes(b"")
    assert names(scanner.scan(1000.1)) == ["job"]


def test_junk_and_hidden_names_are_never_entries(tmp_path: Path) -> None:
    scanner = InboxScanner(tmp_path, settle=0.0, marker="", max_entries=1000)
    for name in (".DS_Store", "._x.jpg", "Thumbs.db", ".incoming", "movie.mp4.part"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "photo.jpg").write_bytes(b"x")
    assert names(scanner.scan(0.0)) == ["photo.jpg"]


def test_priority_then_age(tmp_path: Path) -> None:
    scanner = InboxScanner(tmp_path, settle=0.0, marker="", max_entries=1000)
    for i, name in enumerate(("b-old", "a-new", "c-urgent")):
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    (tmp_path / "c-urgent" / "job.toml").write_text("priority = 3\n")
    os.utime(tmp_path / "c-urgent", (1002, 1002))
    assert names(scanner.scan(0.0)) == ["c-urgent", "b-old", "a-new"]


def test_the_in_progress_hold_is_a_setting_and_each_held_entry_says_why(tmp_path: Path) -> None:
    scanner = InboxScanner(tmp_path, settle=0.2, marker="", max_entries=1000, in_progress_hold=5.0)
    (tmp_path / "trip").mkdir()
    (tmp_path / "trip" / "a.jpg").write_bytes(b"1")
    (tmp_path / "trip" / "b.jpg.part").write_bytes(b"partial")
    (tmp_path / "fresh").mkdir()
    (tmp_path / "movie.mp4.part").write_bytes(b"x")
    assert scanner.scan(100.0) == []
    held = {h.name: h for h in scanner.held_back()}
    assert set(held) == {"trip", "fresh", "movie.mp4.part"}
    assert (held["trip"].reason, held["trip"].path, held["trip"].due) == (
        "in_progress",
        "trip/b.jpg.part",
        105.0,
    )
    assert (held["fresh"].reason, held["fresh"].due) == ("settling", 100.2)
    assert (held["movie.mp4.part"].reason, held["movie.mp4.part"].due) == ("temp_name", None)
    assert names(scanner.scan(100.5)) == ["fresh"]
    assert names(scanner.scan(104.9)) == ["fresh"]
    assert sorted(names(scanner.scan(105.0))) == ["fresh", "trip"]
    assert [h.name for h in scanner.held_back()] == ["movie.mp4.part"]


def test_the_hold_is_never_shorter_than_ten_settle_times(tmp_path: Path) -> None:
    scanner = InboxScanner(tmp_path, settle=1.0, marker="", max_entries=1000, in_progress_hold=2.0)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "a.jpg.crdownload").write_bytes(b"partial")
    assert scanner.scan(0.0) == []
    assert scanner.scan(9.9) == []
    assert names(scanner.scan(10.0)) == ["copy"]


def test_a_folder_without_its_marker_is_held_for_that_reason(tmp_path: Path) -> None:
    scanner = InboxScanner(tmp_path, settle=0.0, marker=".ready", max_entries=1000)
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "a.jpg").write_bytes(b"1")
    assert scanner.scan(0.0) == []
    (held,) = scanner.held_back()
    assert (held.name, held.reason, held.due) == ("job", "no_ready_marker", None)


def test_the_scan_says_how_many_bytes_its_entries_hold(tmp_path: Path) -> None:
    scanner = InboxScanner(tmp_path, settle=2.0, marker="", max_entries=1000)
    (tmp_path / "trip" / "day2").mkdir(parents=True)
    (tmp_path / "trip" / "a.jpg").write_bytes(b"x" * 1000)
    (tmp_path / "trip" / "day2" / "b.jpg").write_bytes(b"y" * 234)
    (tmp_path / "single.jpg").write_bytes(b"z" * 66)
    scanner.scan(0.0)
    assert scanner.bytes_seen == 1300
    (tmp_path / "single.jpg").unlink()
    scanner.scan(1.0)
    assert scanner.bytes_seen == 1234
