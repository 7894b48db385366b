"""Roots, inboxes and daemons for the daemon and command-line benchmarks.

``session_dir()`` is one temporary folder for the whole benchmark run, removed at exit; roots
holding thousands of finished jobs are built there once and shared.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import tomli_w

from bench.common import REPO, SUPPORT, bench_env

JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"


@cache
def session_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="sharpmld-bench-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@cache
def tiny_checkpoint() -> Path:
    """A checkpoint of the tests' tiny model (tests/support/tiny_sharp.py)."""
    sys.path.insert(0, str(SUPPORT))
    import tiny_sharp  # type: ignore[import-not-found]

    path = session_dir() / "tiny.pt"
    tiny_sharp.write_checkpoint(path)
    return path


def write_config(root: Path, **sections: dict[str, Any]) -> Path:
    """A configuration using the tiny model on the CPU; ``sections`` override keys."""
    data: dict[str, Any] = {
        "model": {"factory": "tiny_sharp:create", "checkpoint": str(tiny_checkpoint()), "device": "cpu"},
        "intake": {"settle_seconds": 0.5},
        "log": {"format": "json", "level": "info"},
        "metrics": {"port": 0},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "sharpmld.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def job_id(index: int, when: datetime) -> str:
    return f"{when.strftime('%Y%m%dT%H%M%SZ')}-photo-{index}-{index & 0xFFFFFF:06x}"


def fill_done(root: Path, count: int) -> None:
    """``count`` finished job folders in ``root/done`` laid out as the daemon leaves them."""
    done = root / "done"
    for state in ("inbox", "working", "done", "failed"):
        (root / state).mkdir(parents=True, exist_ok=True)
    start = datetime.now(UTC) - timedelta(days=2)
    payload = os.urandom(2048)
    for i in range(count):
        jid = job_id(i, start + timedelta(seconds=10 * i))
        job = done / jid
        (job / "input").mkdir(parents=True)
        (job / "images").mkdir()
        (job / "input" / "IMG_0001.jpg").write_bytes(JPEG_HEAD + payload)
        (job / "images" / "IMG_0001.png").write_bytes(payload)
        (job / "IMG_0001.ply").write_bytes(payload)
        (job / "IMG_0001.splat").write_bytes(payload[:1024])
        (job / "result.json").write_text(json.dumps({"job_id": jid, "status": "done", "images": [{}]}))
        (job / "job.json").write_text(json.dumps({"job_id": jid, "original_name": f"photo-{i}"}))
        (job / "job.log").write_text(f'{{"event": "job claimed", "job_id": "{jid}"}}\n')


@cache
def done_root(count: int) -> Path:
    """A configured root with ``count`` finished jobs (built once per run)."""
    root = session_dir() / f"root-done-{count}"
    write_config(root)
    fill_done(root, count)
    return root


def fill_inbox(inbox: Path, count: int) -> None:
    """``count`` waiting entries: half folders of two photos, half single photos."""
    inbox.mkdir(parents=True, exist_ok=True)
    payload = JPEG_HEAD + os.urandom(1024)
    for i in range(count):
        if i % 2:
            (inbox / f"photo-{i}.jpg").write_bytes(payload)
        else:
            folder = inbox / f"trip-{i}"
            folder.mkdir()
            (folder / "IMG_0001.jpg").write_bytes(payload)
            (folder / "IMG_0002.jpg").write_bytes(payload)


def parse_time(stamp: str) -> float:
    """A log line's ISO timestamp as a POSIX time."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class DaemonProcess:
    """``sharpmld run`` as a child process; its JSON log lines read incrementally."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log_path = root.parent / f"{root.name}-daemon-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.spawned = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sharpmld", "run", "--root", str(root)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=bench_env(),
            cwd=REPO,
        )
        self._offset = 0
        self._partial = b""
        self.lines: list[dict[str, Any]] = []

    def poll_lines(self) -> list[dict[str, Any]]:
        """New JSON log lines since the last call (also appended to ``self.lines``)."""
        with open(self.log_path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        new = []
        for raw in complete:
            try:
                item = json.loads(raw)
            except ValueError:
                continue
            if isinstance(item, dict):
                new.append(item)
        self.lines.extend(new)
        return new

    def wait_event(self, event: str, timeout: float, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            self.poll_lines()
            for line in self.lines[seen:]:
                if line.get("event") == event and all(line.get(k) == v for k, v in match.items()):
                    return line
            seen = len(self.lines)
            if self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited ({self.proc.returncode}):\n{self.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {event!r}:\n{self.text()[-3000:]}")
            time.sleep(0.01)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
