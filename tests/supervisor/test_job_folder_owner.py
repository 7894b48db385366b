"""``[worker] user``: the job folder is handed to the worker's user, all of it."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from sharpmld.supervisor.spawn import give_job_folder

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")


def someone_else() -> pwd.struct_passwd:
    for name in ("nobody", "daemon"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("no unprivileged user to hand files to")


@needs_root
def test_the_whole_job_folder_goes_to_the_worker_user(tmp_path: Path) -> None:
    user = someone_else()
    outside = tmp_path / "outside.txt"
    outside.write_text("not the job's")
    job = tmp_path / "job"
    (job / "input" / "trip" / "day1").mkdir(parents=True)
    (job / "input" / "trip" / "day1" / "a.jpg").write_bytes(b"x")
    (job / "input" / "b.png").write_bytes(b"y")
    (job / "job.json").write_text("{}")
    (job / "input" / "link").symlink_to(outside)

    give_job_folder(job, user.pw_name)

    for path in [job, *job.rglob("*")]:
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid), f"{path.relative_to(tmp_path)}"
    # A symlink is not followed: what it points at keeps its owner.
    assert outside.stat().st_uid == os.geteuid()


def test_no_user_changes_nothing(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "f").write_text("x")
    before = (job / "f").stat().st_uid
    give_job_folder(job, "")
    assert (job / "f").stat().st_uid == before
