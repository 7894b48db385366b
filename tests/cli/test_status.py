"""``sharpmld status`` as scripts and monitors use it: exit codes, ``--check``, ``--failed-since``.

Each test runs the real command line as a subprocess. A daemon is stood in for by a status
file naming a process that really runs (this test's own, with its real start time), except in
the last tests, which start the real daemon.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from sharpmld.cli.codes import (
    RET_ENGINE_UNAVAILABLE,
    RET_JOBS_FAILED,
    RET_NO_DAEMON,
    RET_OK,
    RET_PAUSED,
    RET_USAGE,
)
from sharpmld.queue.jobid import new_job_id
from sharpmld.queue.layout import RESULT_FILE, STATES
from tests.support import harness
from tests.support.harness import Daemon, wait_for


def status(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = harness.cli(root, "status", "--root", str(root), *args)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


def make_root(root: Path) -> Path:
    for state in (*STATES, ".sharpmld"):
        (root / state).mkdir(parents=True, exist_ok=True)
    return root


def daemon_file(root: Path, **over: Any) -> Path:
    """A status file as the daemon writes it, for this (live) test process unless overridden."""
    pid = os.getpid()
    info: dict[str, Any] = {
        "pid": pid,
        "host": socket.gethostname(),
        "started": psutil.Process(pid).create_time(),
        "engine": "ready",
        "engine_message": "",
        "paused": "",
        "device": "cpu",
        "current_job": None,
    }
    info.update(over)
    path = root / ".sharpmld" / f"daemon-{info['host']}-{info['pid']}.json"
    path.write_text(json.dumps(info))
    return path


def fail_job(root: Path, name: str, finished: datetime) -> str:
    job_id = new_job_id(name)
    folder = root / "failed" / job_id
    folder.mkdir(parents=True)
    stamp = finished.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    (folder / RESULT_FILE).write_text(
        json.dumps({"job_id": job_id, "status": "failed", "finished_at": stamp})
    )
    return job_id


# --- exit codes -------------------------------------------------------------------------------


def test_no_daemon_running_has_its_own_exit_code(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    proc = status(root)
    assert proc.returncode == RET_NO_DAEMON, proc.stdout + proc.stderr
    assert "no daemon is running" in proc.stdout
    assert status(root, "--json").returncode == RET_NO_DAEMON


def test_a_running_daemon_exits_ok(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    daemon_file(root)
    proc = status(root)
    assert proc.returncode == RET_OK, proc.stdout + proc.stderr
    assert f"daemon pid {os.getpid()}@" in proc.stdout


def test_held_back_entries_are_listed_in_text_and_json(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    held = [
        {
            "name": "trip",
            "reason": "in_progress",
            "path": "trip/IMG_1.jpg.part",
            "until": datetime.now(UTC).timestamp() + 90,
            "message": "holds trip/IMG_1.jpg.part, named like a copy still arriving",
        }
    ]
    daemon_file(root, held_back=held, held_back_total=3)
    proc = status(root)
    assert proc.returncode == RET_OK, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.strip().startswith("trip:"))
    assert "IMG_1.jpg.part" in line and "in about" in line
    assert "2 more" in proc.stdout
    data = json.loads(status(root, "--json").stdout)
    assert data["held_back"] == held and data["held_back_total"] == 3


def test_a_reused_pid_is_not_a_running_daemon(tmp_path: Path) -> None:
    """The pid runs, but it is another process than the daemon that wrote the file."""
    root = make_root(tmp_path / "root")
    daemon_file(root, started=psutil.Process(os.getpid()).create_time() - 3600)
    proc = status(root, "--json")
    assert json.loads(proc.stdout)["daemons"] == []
    assert proc.returncode == RET_NO_DAEMON


def test_failed_since_exits_with_the_jobs_failed_code(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    daemon_file(root)
    now = datetime.now(UTC)
    old = fail_job(root, "old", now - timedelta(hours=3))
    new = fail_job(root, "new", now - timedelta(minutes=5))

    proc = status(root, "--failed-since", "1h")
    assert proc.returncode == RET_JOBS_FAILED, proc.stdout + proc.stderr
    assert new in proc.stdout and old not in proc.stdout
    since = (now - timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    info = json.loads(status(root, "--failed-since", since, "--json").stdout)
    assert sorted(info["failed_since"]["jobs"]) == sorted([old, new])
    assert status(root, "--failed-since", "1m").returncode == RET_OK
    later = (now + timedelta(minutes=1)).astimezone().replace(tzinfo=None).isoformat(timespec="seconds")
    assert status(root, "--failed-since", later).returncode == RET_OK, "a time without a zone is local"


def test_failed_since_rejects_a_time_it_cannot_read(tmp_path: Path) -> None:
    proc = status(make_root(tmp_path / "root"), "--failed-since", "yesterday-ish")
    assert proc.returncode == RET_USAGE
    assert "--failed-since" in proc.stderr and "2h" in proc.stderr


def test_help_names_every_exit_code(tmp_path: Path) -> None:
    proc = harness.cli(tmp_path, "status", "--help")
    assert proc.returncode == RET_OK
    for code in (RET_NO_DAEMON, RET_JOBS_FAILED, RET_ENGINE_UNAVAILABLE, RET_PAUSED):
        assert f"  {code}  " in proc.stdout, code
    assert "--check" in proc.stdout and "--failed-since" in proc.stdout


# --- --check ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "code", "words"),
    [
        ({}, RET_OK, "ok: daemon pid"),
        (
            {"engine": "unavailable", "engine_message": "no checkpoint at /x"},
            RET_ENGINE_UNAVAILABLE,
            "no checkpoint",
        ),
        ({"paused": "low_disk"}, RET_PAUSED, "paused: low_disk"),
    ],
)
def test_check_says_in_one_line_why_it_is_unhealthy(
    tmp_path: Path, over: dict[str, Any], code: int, words: str
) -> None:
    root = make_root(tmp_path / "root")
    daemon_file(root, **over)
    proc = status(root, "--check")
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert len(proc.stdout.splitlines()) == 1 and words in proc.stdout, proc.stdout


def test_check_without_a_daemon(tmp_path: Path) -> None:
    proc = status(make_root(tmp_path / "root"), "--check")
    assert proc.returncode == RET_NO_DAEMON
    assert proc.stdout.splitlines() == [f"not running: no daemon is running on {tmp_path / 'root'}"]


# --- the real daemon --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_check_against_the_real_daemon(root: Path, checkpoint: Path, daemons: list[Daemon]) -> None:
    harness.write_config(root, checkpoint)
    d = Daemon(root)
    daemons.append(d)
    d.worker_pid()  # the engine is up
    proc = status(root, "--check")
    assert proc.returncode == RET_OK, proc.stdout + d.text()[-2000:]
    assert d.stop() == 0
    proc = status(root, "--check")
    assert proc.returncode == RET_NO_DAEMON, proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_check_reports_the_real_daemon_paused_for_low_disk(
    root: Path, checkpoint: Path, daemons: list[Daemon]
) -> None:
    harness.write_config(root, checkpoint, intake={"min_free_mb": 1 << 40})
    d = Daemon(root)
    daemons.append(d)
    proc = wait_for(
        lambda: (p := status(root, "--check")).returncode == RET_PAUSED and p,
        60,
        lambda: f"--check to say paused\n{d.text()[-2000:]}",
    )
    assert "low_disk" in proc.stdout
    assert d.stop() == 0
