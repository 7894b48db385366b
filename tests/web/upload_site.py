"""``sharpmld serve`` as a subprocess on a tmp root for the tiny model: the upload tests' site."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import harness
from tests.support.harness import wait_for

MAX_FILE_MB = 0.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def site(tmp_path: Path, checkpoint: Path) -> Iterator[tuple[Path, str]]:
    """A root for the tiny model and ``sharpmld serve`` on it, as a subprocess: (root, base URL)."""
    root = tmp_path / "root"
    harness.write_config(root, checkpoint, limits={"max_file_mb": MAX_FILE_MB})
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "sharpmld", "serve", "--root", str(root), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=harness.env(),
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is None and _up(f"{base}/upload"), 60, "sharpmld serve to answer")
        yield root, base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
