"""``sharpmld cancel`` against the real daemon, as a subprocess, on a temp root."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tests.intake import corpus
from tests.support import harness
from tests.support.harness import Daemon, jobs, wait_for

pytestmark = pytest.mark.timeout(180)


def _drop(root: Path, name: str, count: int) -> dict[str, str]:
    folder = root / "inbox" / name
    folder.mkdir(parents=True)
    for i in range(count):
        rgb = (np.random.default_rng(i).random((64, 80, 3)) * 255).astype(np.uint8)
        corpus.write_png(folder / f"p{i}.png", rgb)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def _inputs(job: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (job / "input").iterdir()}


@pytest.mark.parametrize("now", [False, True])
def test_cancel_stops_a_running_job_and_it_ends_in_failed_as_cancelled(
    root: Path, daemons: list[Daemon], tmp_path: Path, now: bool
) -> None:
    """Photo 1 runs freely; photo 2 is held at the stand-in model's gate while the cancel is
    asked for, so the boundary is known: a plain cancel keeps photos 1 and 2, --now only 1."""
    before = _drop(root, "slow", count=4)
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "go-1").touch()
    d = Daemon(root, extra_env={"TINY_SHARP_GATE": str(gate)})
    daemons.append(d)
    d.wait_logged("image done")
    wait_for(lambda: (gate / "called-2").exists(), 60, lambda: d.text()[-2000:])
    (working,) = jobs(root, "working")
    proc = harness.cli(root, "cancel", "--root", str(root), *(["--now"] if now else []), working.name)
    assert proc.returncode == 0, proc.stderr
    assert "cancel requested" in proc.stdout
    (gate / "go-2").touch()  # photo 2 may finish now; a --now cancel has already stopped it
    (failed,) = wait_for(lambda: jobs(root, "failed"), 60, lambda: d.text()[-2000:])
    error = json.loads((failed / "error.json").read_text())
    assert error["code"] == "cancelled" and error["details"] == {"by": "cli", "now": now}
    images = json.loads((failed / "result.json").read_text())["images"]
    assert len(images) == (1 if now else 2)  # the finished photos are listed, the rest never ran
    assert _inputs(failed) == before
    assert not jobs(root, "done") and not any((root / "working").iterdir())
    # The daemon goes on: a new job is processed on a fresh (or the same) worker.
    (gate / "open").touch()
    _drop(root, "after", count=1)
    wait_for(lambda: jobs(root, "done"), 90, lambda: d.text()[-2000:])


def test_cancel_of_a_queued_entry_while_the_daemon_runs(
    root: Path, checkpoint: Path, daemons: list[Daemon]
) -> None:
    harness.write_config(root, checkpoint, intake={"settle_seconds": 30.0})  # seen, never claimed
    d = Daemon(root)
    daemons.append(d)
    d.worker_pid()  # the daemon is up and its engine ready
    before = _drop(root, "queued", count=2)
    proc = harness.cli(root, "cancel", "--root", str(root), "--json", "queued")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["state"] == "failed"
    (failed,) = jobs(root, "failed")
    assert json.loads((failed / "error.json").read_text())["code"] == "cancelled"
    assert _inputs(failed) == before and not (root / "inbox" / "queued").exists()
