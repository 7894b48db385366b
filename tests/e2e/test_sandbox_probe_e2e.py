"""The real daemon, with ``[worker] sandbox`` on where the kernel refuses user namespaces.

The refusal is played by a fake ``unshare`` first on PATH that prints the real tool's message
(util-linux ``unshare: unshare failed: Operation not permitted``, as seen where
``kernel.unprivileged_userns_clone=0`` or Ubuntu's AppArmor restriction applies) and exits 1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import harness
from tests.support.harness import Daemon

pytestmark = pytest.mark.timeout(120)

REFUSED = "unshare: unshare failed: Operation not permitted"


def test_the_daemon_says_why_the_sandbox_cannot_start(
    tmp_path: Path, checkpoint: Path, daemons: list[Daemon]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "unshare"
    tool.write_text(f'#!/bin/sh\necho "{REFUSED}" >&2\nexit 1\n')
    tool.chmod(0o755)
    root = tmp_path / "root"
    harness.write_config(root, checkpoint, worker={"sandbox": True})
    d = Daemon(root, extra_env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    daemons.append(d)
    [line] = d.wait_logged("engine unavailable; jobs wait in the inbox")[:1]
    assert REFUSED in line["reason"]
    assert "[worker] sandbox = false" in line["reason"]
    status = harness.wait_for(d.status, 30, "a status file")
    assert REFUSED in status["engine_message"]
    assert d.stop() == 0
