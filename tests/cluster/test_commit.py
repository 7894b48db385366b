"""The write-once commit: of all attempts at a photo, exactly one counts; losers leave nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sharpmld.cluster.commit import Attempt, committed, sweep_losers, winning_folder


def attempt(job: Path, name: str, photo: str = "trip/a.jpg") -> Attempt:
    a = Attempt(job, photo, name)
    (a.open() / "a.ply").write_bytes(name.encode())
    return a


def test_of_racing_attempts_exactly_one_commits(tmp_path: Path) -> None:
    attempts = [attempt(tmp_path, f"worker-{n}") for n in range(8)]
    start = threading.Barrier(len(attempts))
    won: dict[str, bool] = {}

    def race(a: Attempt) -> None:
        start.wait()
        won[a.name] = a.commit()

    threads = [threading.Thread(target=race, args=(a,)) for a in attempts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [name for name, ok in won.items() if ok]
    assert len(winners) == 1, won
    assert committed(tmp_path, "trip/a.jpg") == winners[0]
    folder = winning_folder(tmp_path, "trip/a.jpg")
    assert folder is not None and (folder / "a.ply").read_bytes() == winners[0].encode()
    losers = [a for a in attempts if a.name != winners[0]]
    assert not any(a.folder.exists() for a in losers), "a loser left its files"


def test_a_late_commit_loses_and_removes_only_its_own_files(tmp_path: Path) -> None:
    first = attempt(tmp_path, "on-time")
    late = attempt(tmp_path, "paused-then-resumed")
    assert first.commit()
    assert not late.commit()
    assert first.folder.exists() and not late.folder.exists()
    assert committed(tmp_path, "trip/a.jpg") == "on-time"


def test_a_crashed_attempts_leftovers_are_swept_but_never_the_winners(tmp_path: Path) -> None:
    crashed = attempt(tmp_path, "crashed")  # never committed, never discarded
    winner = attempt(tmp_path, "winner")
    assert winner.commit()
    assert sweep_losers(tmp_path, "trip/a.jpg") == ["crashed"]
    assert winner.folder.exists() and not crashed.folder.exists()


def test_photos_with_the_same_name_in_different_folders_do_not_collide(tmp_path: Path) -> None:
    assert attempt(tmp_path, "w1", "x/a.jpg").commit()
    assert attempt(tmp_path, "w2", "x%2Fa.jpg").commit(), "an escaped name met a real path"
    assert committed(tmp_path, "x/a.jpg") == "w1" and committed(tmp_path, "x%2Fa.jpg") == "w2"


def test_an_attempt_whose_job_has_closed_recreates_nothing(tmp_path: Path) -> None:
    """A late delivery or a late loser of a job already moved to done/: its attempt must not
    bring the job's workspace back to life in working/, with a COMMIT nobody reads."""
    gone = tmp_path / "working" / "job" / "cluster"  # moved away with its job
    (tmp_path / "working").mkdir()
    late = Attempt(gone, "a.jpg", "late")
    with pytest.raises(FileNotFoundError):
        late.open()
    with pytest.raises(FileNotFoundError):
        late.commit()
    assert list((tmp_path / "working").iterdir()) == []
