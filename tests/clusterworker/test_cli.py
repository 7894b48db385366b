"""``sharpmld worker`` refuses to start, and says why, without a broker or a mounted share."""

from __future__ import annotations

from pathlib import Path

from tests.support import harness


def test_worker_without_a_broker_is_a_usage_error(root: Path) -> None:
    done = harness.cli(root, "worker", "--root", str(root))
    assert done.returncode == 2
    assert "--cluster nats://" in done.stderr


def test_worker_on_a_root_that_is_not_the_shared_folder_says_so(root: Path) -> None:
    done = harness.cli(root, "worker", "--cluster", "nats://127.0.0.1:1", "--root", str(root))
    assert done.returncode == 3
    assert "is the shared folder mounted" in done.stderr
