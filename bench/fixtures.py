"""Roots, inboxes and daemons for the daemon and command-line benchmarks.

``session_dir()`` is one temporary folder for the whole benchmark run, removed at exit; roots
holding thousands of finished jobs are built there once and shared.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from bench.common import SUPPORT
from sharpmld.queue.layout import Layout
from tests.support import roots
from tests.support.harness import Daemon

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
    base: dict[str, dict[str, Any]] = {"intake": {"settle_seconds": 0.5}, "log": {"level": "info"}}
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return roots.write_config(root, tiny_checkpoint(), **base)


def fill_done(root: Path, count: int) -> None:
    """``count`` finished jobs in ``root/done``, two days old, ten seconds apart."""
    layout = Layout(root)
    layout.ensure()
    start = datetime.now(UTC) - timedelta(days=2)
    payload = os.urandom(2048)
    files = {
        "input/IMG_0001.jpg": JPEG_HEAD + payload,
        "images/IMG_0001.png": payload,
        "IMG_0001.ply": payload,
        "IMG_0001.splat": payload[:1024],
    }
    for i in range(count):
        roots.finished_job(layout, f"photo-{i}", files, when=start + timedelta(seconds=10 * i))


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


class DaemonProcess(Daemon):
    """The tests' daemon wrapper, plus its JSON log lines read incrementally (so waiting on
    thousands of lines stays cheap) and the wall time it was spawned at."""

    def __init__(self, root: Path) -> None:
        self.spawned = time.time()
        super().__init__(root)
        self._offset = 0
        self._partial = b""
        self.seen: list[dict[str, Any]] = []

    def poll_lines(self) -> list[dict[str, Any]]:
        """New JSON log lines since the last call (also appended to ``self.seen``)."""
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
        self.seen.extend(new)
        return new

    def wait_event(self, event: str, timeout: float, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            self.poll_lines()
            for line in self.seen[checked:]:
                if line.get("event") == event and all(line.get(k) == v for k, v in match.items()):
                    return line
            checked = len(self.seen)
            if self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited ({self.proc.returncode}):\n{self.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {event!r}:\n{self.text()[-3000:]}")
            time.sleep(0.01)  # polling interval of the wait above, not a synchronisation
