"""Shutdown, timeouts, worker crashes and daemon deaths, with real processes."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.intake import corpus
from tests.support import harness
from tests.support.harness import Daemon, jobs, wait_for

pytestmark = pytest.mark.timeout(180)

MAGENTA = (255, 0, 255)  # the tiny model kills its own process
CYAN = (0, 255, 255)  # the tiny model hangs


def drop(root: Path, name: str, corner: tuple[int, int, int] | None = None, count: int = 1) -> Path:
    folder = root / "inbox" / name
    folder.mkdir(parents=True)
    for i in range(count):
        rgb = (np.random.default_rng(i).random((64, 80, 3)) * 255).astype(np.uint8)
        if corner is not None:
            rgb[0, 0] = corner
        corpus.write_png(folder / f"p{i}.png", rgb)
    return folder


def result(job: Path) -> dict:
    return json.loads((job / "result.json").read_text())


def test_term_hands_the_job_in_flight_back_to_the_inbox(root: Path, checkpoint: Path, daemons: list) -> None:
    harness.write_config(root, checkpoint, queue={"shutdown_grace_seconds": 0.5})
    drop(root, "slow", count=3)
    d = Daemon(root, extra_env={"TINY_SHARP_SLEEP": "2"})
    daemons.append(d)
    d.wait_logged("image started")
    assert d.stop(signal.SIGTERM, timeout=30) == 0
    assert (root / "inbox" / "slow").is_dir()
    assert sorted(p.name for p in (root / "inbox" / "slow").iterdir()) == ["p0.png", "p1.png", "p2.png"]
    assert not any((root / "working").iterdir())
    assert not jobs(root, "failed") and not jobs(root, "done")
    assert d.logged("job handed back to the inbox")


def test_term_lets_the_job_finish_within_the_grace_period(root: Path, daemons: list) -> None:
    drop(root, "short", count=2)
    d = Daemon(root, extra_env={"TINY_SHARP_SLEEP": "0.5"})
    daemons.append(d)
    d.wait_logged("image started")
    assert d.stop(signal.SIGTERM, timeout=30) == 0
    (done,) = jobs(root, "done")
    assert len(result(done)["images"]) == 2


def test_worker_dies_with_a_killed_daemon(root: Path, daemons: list) -> None:
    d = Daemon(root)
    daemons.append(d)
    worker = psutil.Process(d.worker_pid())
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    wait_for(
        lambda: not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE,
        10,
        "the orphaned worker to exit",
    )


def test_hanging_image_times_out_and_the_next_job_runs(root: Path, checkpoint: Path, daemons: list) -> None:
    harness.write_config(root, checkpoint, worker={"image_timeout_seconds": 2.0, "engine_retry_seconds": 1.0})
    drop(root, "hangs", corner=CYAN)
    d = Daemon(root)
    daemons.append(d)
    wait_for(lambda: jobs(root, "failed"), 60, lambda: f"the hanging job to fail\n{d.text()[-3000:]}")
    (failed,) = jobs(root, "failed")
    error = json.loads((failed / "error.json").read_text())
    assert error["code"] == "timeout"
    assert "too long" in (failed / "ERROR.txt").read_text()
    drop(root, "fine")
    wait_for(lambda: jobs(root, "done"), 60, lambda: f"the next job\n{d.text()[-3000:]}")
    assert d.stop() == 0


def test_crashing_worker_is_retried_then_fails(root: Path, checkpoint: Path, daemons: list) -> None:
    harness.write_config(root, checkpoint, queue={"max_attempts": 2})
    drop(root, "poison", corner=MAGENTA)
    d = Daemon(root)
    daemons.append(d)
    wait_for(lambda: jobs(root, "failed"), 90, lambda: f"the poison job to fail\n{d.text()[-3000:]}")
    (failed,) = jobs(root, "failed")
    error = json.loads((failed / "error.json").read_text())
    assert error["code"] == "engine_crash"
    assert "SIGKILL" in error["message"]
    record = result(failed)
    assert record["attempts"] == 2
    assert [h["outcome"] for h in record["history"]] == ["worker_crash"] * 2
    drop(root, "after")
    wait_for(lambda: jobs(root, "done"), 60, lambda: f"the next job\n{d.text()[-3000:]}")
    assert d.stop() == 0


def test_job_of_a_killed_daemon_is_retried_on_restart(root: Path, daemons: list) -> None:
    drop(root, "interrupted", count=2)
    first = Daemon(root, extra_env={"TINY_SHARP_SLEEP": "3"})
    daemons.append(first)
    first.wait_logged("image started")
    first.kill()
    (working,) = jobs(root, "working")
    assert (working / "input" / "p0.png").is_file()

    second = Daemon(root)
    daemons.append(second)
    wait_for(lambda: jobs(root, "done"), 60, lambda: f"the recovered job\n{second.text()[-3000:]}")
    (done,) = jobs(root, "done")
    assert done.name == working.name
    record = result(done)
    # The daemon's death is not the job's fault: counted apart, not as an attempt.
    assert record["attempts"] == 1 and record["daemon_restarts"] == 1
    assert [h["outcome"] for h in record["history"]] == ["daemon_died", "done"]
    assert len(record["images"]) == 2
    assert second.logged("recovering job left by a stopped daemon")
    assert not any((root / "working").iterdir())
    assert second.stop() == 0


def test_second_term_stops_at_once(root: Path, checkpoint: Path, daemons: list) -> None:
    harness.write_config(root, checkpoint, queue={"shutdown_grace_seconds": 60})
    drop(root, "long", count=5)
    d = Daemon(root, extra_env={"TINY_SHARP_SLEEP": "3"})
    daemons.append(d)
    d.wait_logged("image started")
    d.proc.send_signal(signal.SIGTERM)
    d.wait_logged("stopping: no new jobs; finishing the one in flight")
    started = time.monotonic()
    assert d.stop(signal.SIGTERM, timeout=30) == 0
    assert time.monotonic() - started < 15
    assert (root / "inbox" / "long").is_dir()
    assert os.listdir(root / "working") == []


def test_worker_is_recycled_after_the_job_that_reaches_its_image_quota(
    root: Path, checkpoint: Path, daemons: list
) -> None:
    """The quota counts photos across jobs; the worker restarts at the end of the job in which
    it reached the quota, never in the middle of one (a job runs whole on one worker)."""
    harness.write_config(root, checkpoint, worker={"max_images_per_worker": 2})
    d = Daemon(root)
    daemons.append(d)

    def recycled(count: int) -> list[int]:
        d.wait_logged("worker recycled", count=count)
        return [line["images"] for line in d.logged("worker recycled")]

    def finish(name: str, count: int, corner: tuple[int, int, int]) -> dict:
        drop(root, name, corner=corner, count=count)
        wait_for(
            lambda: [j for j in jobs(root, "done") if result(j)["original_name"] == name],
            60,
            lambda: f"job {name}\n{d.text()[-2000:]}",
        )
        (job,) = [j for j in jobs(root, "done") if result(j)["original_name"] == name]
        return result(job)

    finish("first", 1, (1, 2, 3))
    finish("second", 1, (4, 5, 6))  # the quota is reached exactly here
    assert recycled(1) == [2]
    big = finish("bigger", 3, (7, 8, 9))  # past the quota mid-job: the job still runs whole
    assert recycled(2) == [2, 3]
    assert big["attempts"] == 1 and len(big["images"]) == 3
    d.wait_logged("engine ready", count=3)  # each recycle brings up a fresh worker
    assert not d.logged("worker lost")
    assert d.stop() == 0
