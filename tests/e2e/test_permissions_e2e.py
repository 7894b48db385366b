"""The daemon as an ordinary user: what that user cannot read or move is held back and named,
and everything else goes on. Root reads mode-000 files anyway, so under a root suite (CI) the
daemon runs as uid 0 without the capabilities that bypass permission bits (setpriv; see
``harness.without_dac``), or else as ``nobody`` on a root that user owns; the test skips,
saying why, only where neither works."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.intake import corpus
from tests.support import harness
from tests.support.harness import Daemon, jobs

pytestmark = pytest.mark.timeout(180)

USER = "nobody"


@dataclass(frozen=True)
class Launch:
    """Where the test builds its root, whom the files belong to, and how the daemon starts."""

    base: Path
    uid: int
    gid: int
    prefix: tuple[str, ...] = ()
    user: str | None = None


@pytest.fixture
def launch(checkpoint: Path) -> Iterator[Launch]:
    """A folder the daemon's identity owns, checkpoint inside (the pytest temp tree is private
    to root, which a ``nobody`` daemon could not enter)."""
    prefix, why_not_caps = harness.permission_bits_prefix()
    path = Path(tempfile.mkdtemp(prefix="sharpmld-perm-"))
    try:
        shutil.copy(checkpoint, path / "tiny.pt")
        if prefix is not None:
            yield Launch(path, os.getuid(), os.getgid(), prefix=tuple(prefix))
            return
        why = harness.cannot_run_as(USER)
        if why:
            pytest.skip(f"{why_not_caps}; and {why}")
        import pwd

        who = pwd.getpwnam(USER)
        os.chmod(path, 0o755)
        os.chown(path, who.pw_uid, who.pw_gid)
        yield Launch(path, who.pw_uid, who.pw_gid, user=USER)
    finally:
        _unlock(path)
        shutil.rmtree(path, ignore_errors=True)


def _unlock(path: Path) -> None:
    """Give the test's own user its folders back, so that a non-root suite can remove them."""
    for folder, dirs, _files in os.walk(path):  # top-down: each folder is opened before entered
        for name in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(folder, name), 0o700)


def _own(path: Path, uid: int, gid: int) -> None:
    for folder, dirs, files in os.walk(path):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.chown(name, uid, gid)


def _stuck(port: int) -> dict[str, float]:
    samples = harness.scrape(port)
    return {
        r: harness.metric(samples, "sharpmld_inbox_stuck_entries", reason=r)
        for r in ("unreadable", "not_writable")
    }


def test_an_unreadable_folder_is_held_back_the_others_done_and_term_stops(
    launch: Launch, daemons: list[Daemon]
) -> None:
    root = launch.base / "root"
    harness.write_config(root, launch.base / "tiny.pt")
    inbox = root / "inbox"
    for name in ("a_locked", "b_good"):
        (inbox / name).mkdir(parents=True)
        corpus.write_jpeg(inbox / name / "IMG_1.jpg")
    _own(root, launch.uid, launch.gid)
    os.chmod(inbox / "a_locked", 0)

    daemon = Daemon(root, user=launch.user, prefix=launch.prefix)
    daemons.append(daemon)
    harness.wait_for(lambda: jobs(root, "done"), 120, lambda: daemon.text()[-3000:])
    assert [p.name.split("-")[1] for p in jobs(root, "done")] == ["b_good"]

    def held() -> dict[str, str]:
        return {h["name"]: h["reason"] for h in (daemon.status() or {}).get("held_back", [])}

    harness.wait_for(lambda: held().get("a_locked") == "unreadable", 30, lambda: str(daemon.status()))
    port = daemon.metrics_port()
    harness.wait_for(lambda: _stuck(port) == {"unreadable": 1, "not_writable": 0}, 30, "the stuck gauge")
    assert daemon.stop(timeout=30) == 0
    assert daemon.logged("internal error in the daemon loop") == []
    assert len(daemon.logged("inbox entry held back")) == 1
    assert (inbox / "a_locked").exists() and jobs(root, "working") == []


def test_a_folder_owned_by_another_user_is_held_back_once_and_leaves_no_debris(
    launch: Launch, daemons: list[Daemon]
) -> None:
    root = launch.base / "root"
    harness.write_config(root, launch.base / "tiny.pt")
    inbox = root / "inbox"
    for name in ("a_theirs", "b_good"):
        (inbox / name).mkdir(parents=True)
        corpus.write_jpeg(inbox / name / "IMG_1.jpg")
    _own(root, launch.uid, launch.gid)
    if os.geteuid() == 0:
        other = 65534 if launch.uid == 0 else 0  # nobody for a root daemon, root for nobody
        os.chown(inbox / "a_theirs", other, other)
        os.chmod(inbox / "a_theirs", 0o755)  # readable by all, writable (so movable) by its owner
    else:
        # An ordinary user cannot give a folder away; one it may read but not write is refused
        # by the same check (renaming a folder to a new parent needs write permission on it).
        os.chmod(inbox / "a_theirs", 0o555)

    daemon = Daemon(root, user=launch.user, prefix=launch.prefix)
    daemons.append(daemon)
    harness.wait_for(lambda: jobs(root, "done"), 120, lambda: daemon.text()[-3000:])
    assert [p.name.split("-")[1] for p in jobs(root, "done")] == ["b_good"]

    def held() -> dict[str, str]:
        return {h["name"]: h["reason"] for h in (daemon.status() or {}).get("held_back", [])}

    harness.wait_for(lambda: held().get("a_theirs") == "not_writable", 30, lambda: str(daemon.status()))
    port = daemon.metrics_port()
    harness.wait_for(lambda: _stuck(port) == {"unreadable": 0, "not_writable": 1}, 30, "the stuck gauge")
    assert daemon.stop(timeout=30) == 0
    assert daemon.logged("internal error in the daemon loop") == []
    assert len(daemon.logged("inbox entry held back")) == 1
    assert (inbox / "a_theirs" / "IMG_1.jpg").exists()
    assert jobs(root, "working") == [] and jobs(root, "failed") == []


def test_unreadable_photos_inside_a_job_are_rejected_by_name(launch: Launch, daemons: list[Daemon]) -> None:
    root = launch.base / "root"
    harness.write_config(root, launch.base / "tiny.pt")
    inbox = root / "inbox"
    (inbox / "mixed" / "locked").mkdir(parents=True)
    corpus.write_jpeg(inbox / "mixed" / "IMG_1.jpg")
    corpus.write_jpeg(inbox / "mixed" / "locked" / "IMG_2.jpg")
    (inbox / "none").mkdir()
    corpus.write_jpeg(inbox / "none" / "secret.jpg")
    _own(root, launch.uid, launch.gid)
    os.chmod(inbox / "mixed" / "locked", 0)
    os.chmod(inbox / "none" / "secret.jpg", 0)

    daemon = Daemon(root, user=launch.user, prefix=launch.prefix)
    daemons.append(daemon)
    harness.wait_for(
        lambda: len(jobs(root, "done")) + len(jobs(root, "failed")) == 2, 120, lambda: daemon.text()[-3000:]
    )
    assert daemon.stop(timeout=30) == 0
    (done,) = jobs(root, "done")
    result = json.loads((done / "result.json").read_text())
    assert [i["source"] for i in result["images"]] == ["IMG_1.jpg"]
    assert [(r["source"], r["code"]) for r in result["rejected"]] == [("locked", "permission_denied")]
    (failed,) = jobs(root, "failed")
    account = json.loads((failed / "result.json").read_text())
    assert [(r["source"], r["code"]) for r in account["rejected"]] == [("secret.jpg", "permission_denied")]
    assert "secret.jpg" in (failed / "ERROR.txt").read_text()
