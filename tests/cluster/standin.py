"""What the cluster tests need around the workers: a stand-in for the intake, and workers.

The stand-in lays a job out in ``working/<job id>/`` with its photos, as the intake will
store them for the workers, and publishes one ``PhotoTask`` per photo. ``Worker`` runs the
real ``sharpmld worker --cluster`` as a subprocess, its log captured to a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from sharpmld.cluster.broker import Broker
from sharpmld.cluster.commit import ATTEMPTS_DIR, COMMITS_DIR, committed
from sharpmld.cluster.subjects import band_for
from sharpmld.cluster.task import PhotoTask
from sharpmld.clusterworker.status import WORKERS_DIR
from sharpmld.queue.jobid import new_job_id
from tests.intake import corpus
from tests.support import harness
from tests.support.harness import wait_for

WAIT = 20.0  # seconds any one broker answer may take on this machine


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_job(root: Path, name: str, photos: int, seed: int = 0) -> tuple[Path, dict[str, str]]:
    """A job folder in working/ with ``photos`` small PNGs; returns it and the photos' hashes."""
    job = root / "working" / new_job_id(name)
    job.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(photos):
        corpus.write_png(job / f"img{i:03d}.png", (rng.random((40, 56, 3)) * 255).astype(np.uint8))
    return job, {p.name: sha(p) for p in job.iterdir()}


def publish(broker: Broker, root: Path, job: Path, options: dict[str, Any] | None = None) -> list[str]:
    """One message per photo of ``job``, as the intake publishes them; returns the photos."""
    photos = sorted(p.name for p in job.iterdir() if p.is_file())
    rel = job.relative_to(root).as_posix()
    for photo in photos:
        task = PhotoTask(job.name, photo, rel, options or {"formats": ["ply"]})
        broker.publish(band_for(0), job.name, photo, task.to_bytes()).result(WAIT)
    return photos


def attempts_of(job: Path, photo: str) -> list[str]:
    folder = job / ATTEMPTS_DIR / photo
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def commits(job: Path) -> list[str]:
    folder = job / COMMITS_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


class Worker:
    """``sharpmld worker --cluster URL --root ROOT`` as a child process."""

    def __init__(self, root: Path, url: str, extra_env: dict[str, str] | None = None) -> None:
        self.root = root
        self.log_path = root.parent / f"worker-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sharpmld", "worker", "--cluster", url, "--root", str(root)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=harness.env(extra_env),
            cwd=root.parent,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logged(self, event: str) -> list[dict[str, Any]]:
        out = []
        for line in self.text().splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and item.get("event") == event:
                out.append(item)
        return out

    def status(self) -> dict[str, Any] | None:
        """This worker's status file, once it exists (and while it does)."""
        for path in (self.root / ".sharpmld" / WORKERS_DIR).glob(f"*.{self.pid}.json"):
            try:
                return dict(json.loads(path.read_text()))
            except (OSError, ValueError):
                return None
        return None

    def wait_warm(self, timeout: float = 120) -> None:
        wait_for(
            lambda: (self.status() or {}).get("model_warm") and (self.status() or {}).get("connected"),
            timeout,
            lambda: f"worker {self.pid} to be warm and connected\n{self.text()[-3000:]}",
        )

    def holding(self) -> dict[str, Any] | None:
        return (self.status() or {}).get("current_photo")

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log.close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            with_cont = [signal.SIGCONT, signal.SIGTERM]  # a paused worker must hear the TERM
            for sig in with_cont:
                self.proc.send_signal(sig)
        return self.wait()


def start_workers(
    root: Path, url: str, workers: list[Worker], count: int, extra: dict[str, str] | None = None
) -> list[Worker]:
    env = {"TINY_SHARP_GRID": "8", **(extra or {})}
    new = [Worker(root, url, env) for _ in range(count)]
    workers.extend(new)
    for w in new:
        w.wait_warm()
    return new


def committed_by(job: Path, photo: str) -> str | None:
    return committed(job, photo)
