"""The worker under pressure, and a full disk: nothing is lost, the daemon goes on."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.intake import corpus
from tests.support import harness
from tests.support.harness import Daemon, jobs, wait_for

pytestmark = pytest.mark.timeout(180)

YELLOW = (255, 255, 0)  # the tiny model allocates memory without end


def drop(root: Path, name: str, corner: tuple[int, int, int] | None = None, side: int = 64) -> Path:
    folder = root / "inbox" / name
    folder.mkdir(parents=True)
    rgb = (np.random.default_rng(len(name)).random((side, side, 3)) * 255).astype(np.uint8)
    if corner is not None:
        rgb[0, 0] = corner
    corpus.write_png(folder / "p.png", rgb)
    return folder


def error_code(job: Path) -> str:
    return str(json.loads((job / "error.json").read_text())["code"])


def test_worker_over_its_memory_cap_is_killed(root: Path, checkpoint: Path, daemons: list) -> None:
    harness.write_config(root, checkpoint, worker={"max_memory_mb": 1500})
    drop(root, "greedy", corner=YELLOW)
    d = Daemon(root)
    daemons.append(d)
    wait_for(lambda: jobs(root, "failed"), 120, lambda: f"the greedy job to fail\n{d.text()[-3000:]}")
    (failed,) = jobs(root, "failed")
    assert error_code(failed) == "out_of_memory"
    assert "1500 MB" in (failed / "ERROR.txt").read_text()
    drop(root, "modest")
    wait_for(lambda: jobs(root, "done"), 60, lambda: f"the next job\n{d.text()[-3000:]}")
    assert d.stop() == 0


def test_output_over_the_file_size_limit_fails_cleanly(root: Path, checkpoint: Path, daemons: list) -> None:
    harness.write_config(root, checkpoint, worker={"max_file_size_mb": 1})
    drop(root, "big")
    d = Daemon(root, extra_env={"TINY_SHARP_GRID": "160"})  # 25,600 Gaussians: a 1.4 MB .ply
    daemons.append(d)
    wait_for(lambda: jobs(root, "failed"), 60, lambda: f"the big job to fail\n{d.text()[-3000:]}")
    (failed,) = jobs(root, "failed")
    assert error_code(failed) == "output_too_large"
    result = json.loads((failed / "result.json").read_text())
    assert [r["code"] for r in result["rejected"]] == ["output_too_large"]
    assert not list(failed.glob("*.ply")) and not list(failed.glob(".sharpmld-tmp-*"))
    assert d.logged("job failed") and not d.logged("worker lost")
    assert d.stop() == 0


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "volume"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_hands_the_job_back_and_it_completes_later(
    small_volume: Path, checkpoint: Path, daemons: list
) -> None:
    root = small_volume / "root"
    harness.write_config(
        root, checkpoint, intake={"settle_seconds": 0.3, "min_free_mb": 0.5, "disk_full_retry_seconds": 1.0}
    )
    folder = drop(root, "filling", side=48)
    original = (folder / "p.png").read_bytes()
    free = __import__("shutil").disk_usage(small_volume).free
    filler = small_volume / "filler"
    filler.write_bytes(b"\0" * (free - 900 * 1024))  # room to claim, not for a 1.4 MB .ply

    d = Daemon(root, extra_env={"TINY_SHARP_GRID": "160"})
    daemons.append(d)
    d.wait_logged("the disk filled up during a job; it went back to the inbox", timeout=60)
    assert not jobs(root, "failed") and not jobs(root, "done")
    wait_for(
        lambda: (root / "inbox" / "filling" / "p.png").is_file() or jobs(root, "working"),
        10,
        "the job back in the inbox",
    )
    filler.unlink()
    wait_for(lambda: jobs(root, "done"), 60, lambda: f"the job to complete\n{d.text()[-3000:]}")
    (done,) = jobs(root, "done")
    assert (done / "input" / "p.png").read_bytes() == original
    assert not jobs(root, "failed")
    assert d.stop() == 0


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="tests the Linux sandbox")
def test_sandboxed_worker_has_no_network(root: Path, checkpoint: Path, tmp_path: Path, daemons: list) -> None:
    import shutil
    import socket

    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    record = tmp_path / "net.txt"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        env = {"TINY_SHARP_NET_PROBE": f"{port}:{record}"}
        for sandbox, name in ((False, "open"), (True, "closed")):
            harness.write_config(root, checkpoint, worker={"sandbox": sandbox})
            drop(root, name)
            d = Daemon(root, "--burst", extra_env=env)
            daemons.append(d)
            assert d.wait(timeout=90) == 0, d.text()[-2000:]
    outcomes = record.read_text().splitlines()
    assert outcomes[0] == "reached"  # the probe works: without the sandbox it gets through
    assert outcomes[1].startswith("refused")
    assert len(jobs(root, "done")) == 2
