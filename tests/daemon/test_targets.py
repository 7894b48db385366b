"""Each daemon on a host serves metrics on its own port and tells Prometheus where."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import tomli_w

from sharpmld.core import config
from sharpmld.core.errors import ConfigError
from sharpmld.daemon.loop import Daemon
from sharpmld.daemon.status import status_path
from sharpmld.daemon.targets import TARGETS_DIR, targets_path
from tests.daemon.fakes import FakeWatcher, FakeWorker


def metrics_daemon(root: Path, port: int = 0) -> Daemon:
    root.mkdir(parents=True, exist_ok=True)
    data = {"metrics": {"enabled": True, "port": port}, "intake": {"observer": "polling"}}
    (root / config.CONFIG_NAME).write_text(tomli_w.dumps(data))
    cfg = config.load(root=root, environ={})
    return Daemon(cfg, supervisor=FakeWorker(), watcher=FakeWatcher())


def test_two_daemons_on_one_root_get_their_own_ports_and_discovery_entries(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first, second = metrics_daemon(root), metrics_daemon(root)
    first.start(0.0)
    try:
        second.start(0.0)  # the same configuration: the second no longer fails on the port
        try:
            ports = {d.metrics.port for d in (first, second) if d.metrics is not None}
            assert len(ports) == 2 and 0 not in ports
            status = json.loads(status_path(root / ".sharpmld").read_text())
            assert status["metrics_port"] in ports
            # Both are this process here, so they share one discovery file: the last one wins.
            (entry,) = json.loads(targets_path(root / ".sharpmld").read_text())
            assert entry["targets"] == [f"127.0.0.1:{second.metrics.port}"]  # type: ignore[union-attr]
            assert entry["labels"] == {"host": socket.gethostname(), "root": str(root)}
        finally:
            second.stop()
    finally:
        first.stop()
    assert not targets_path(root / ".sharpmld").exists(), "the discovery file outlived its daemon"


def test_a_dead_daemons_discovery_file_is_swept_at_start(tmp_path: Path) -> None:
    root = tmp_path / "root"
    folder = root / ".sharpmld" / TARGETS_DIR
    folder.mkdir(parents=True)
    dead = folder / f"daemon-{socket.gethostname()}-{2**22 + 3}.json"  # no such process
    other_host = folder / "daemon-elsewhere.example-1.json"  # its status file is still there
    for path in (dead, other_host):
        path.write_text('[{"targets": ["127.0.0.1:1"], "labels": {}}]')
    (root / ".sharpmld" / dead.name).write_text('{"pid": 4194307, "started": 1.0}')
    (root / ".sharpmld" / other_host.name).write_text('{"pid": 1, "started": 1.0}')
    daemon = metrics_daemon(root)
    daemon.start(0.0)
    try:
        assert not dead.exists() and other_host.exists()
        assert targets_path(root / ".sharpmld").exists()
    finally:
        daemon.stop()


def test_an_any_address_bind_is_published_by_host_name(tmp_path: Path) -> None:
    from sharpmld.daemon.targets import write_target

    path = write_target(tmp_path, "0.0.0.0", 9999, root=tmp_path)
    (entry,) = json.loads(path.read_text())
    assert entry["targets"] == [f"{socket.gethostname()}:9999"]
    assert path.parent.name == TARGETS_DIR and str(os.getpid()) in path.name


def test_the_command_line_port_is_checked_like_the_files(tmp_path: Path) -> None:
    cfg = config.load(root=tmp_path, environ={})
    assert cfg.with_value("metrics", "port", 0, "--metrics-port").get("metrics", "port") == 0
    with pytest.raises(ConfigError, match=r"--metrics-port.*0 to 65535"):
        cfg.with_value("metrics", "port", 70000, "--metrics-port")
