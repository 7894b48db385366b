"""Nothing lost, nothing twice: real daemons killed at random moments, and daemons racing."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.intake import corpus
from tests.support import harness
from tests.support.harness import Daemon, jobs, wait_for

CRASHPOINTS = (
    "claim_prepared",
    "claimed",
    "adopted",
    "dispatched",
    "output_written",
    "finishing",
    "finished",
)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def submit(root: Path, name: str, images: int, seed: int) -> dict[str, str]:
    """Drop a job the safe way (dot-name, then rename); return its files' hashes."""
    staging = root / "inbox" / f".{name}.incoming"
    staging.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(images):
        corpus.write_png(staging / f"img{i}.png", (rng.random((40, 56, 3)) * 255).astype(np.uint8))
    hashes = {p.name: sha(p) for p in staging.iterdir()}
    os.rename(staging, root / "inbox" / name)
    return hashes


def final_states(root: Path) -> dict[str, list[Path]]:
    """original_name -> every finished job folder holding it."""
    seen: dict[str, list[Path]] = {}
    for state in ("done", "failed"):
        for job in jobs(root, state):
            name = json.loads((job / "job.json").read_text())["original_name"]
            seen.setdefault(name, []).append(job)
    return seen


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".sharpmld-tmp-") or p.name == "lease.json"]


@pytest.mark.timeout(420)
def test_kill_at_random_moments_loses_nothing(
    root: Path, checkpoint: Path, daemons: list, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.write_config(
        root,
        checkpoint,
        intake={"settle_seconds": 0.2, "scan_interval_seconds": 0.3},
        queue={"max_attempts": 4, "heartbeat_seconds": 0.5},
        log={"level": "info"},
    )
    seed = int(os.environ.get("SHARPMLD_CRASH_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    expected: dict[str, dict[str, str]] = {}
    kills = 0
    rounds = 24
    for round_no in range(rounds):
        for _ in range(2):
            name = f"job{len(expected):03d}"
            expected[name] = submit(root, name, rng.randint(1, 3), len(expected))
        point = CRASHPOINTS[round_no % len(CRASHPOINTS)] if round_no % 2 == 0 else None
        extra = {"TINY_SHARP_GRID": "8", "TINY_SHARP_SLEEP": "0.2"}
        if point:
            extra["SHARPMLD_CRASHPOINTS"] = f"{point}:0.5"
        d = Daemon(root, extra_env=extra)
        daemons.append(d)
        deadline = time.monotonic() + rng.uniform(1.0, 6.0)
        while time.monotonic() < deadline and d.proc.poll() is None:
            time.sleep(0.05)
        if d.proc.poll() is None:
            d.proc.send_signal(signal.SIGKILL)
        d.kill()
        kills += 1

    final = Daemon(root, "--burst", extra_env={"TINY_SHARP_GRID": "8"})
    daemons.append(final)
    assert final.wait(timeout=240) == 0, final.text()[-3000:]

    seen = final_states(root)
    assert sorted(seen) == sorted(expected), f"seed {seed}"
    for name, places in seen.items():
        assert len(places) == 1, f"{name} finished twice: {places} (seed {seed})"
        (job,) = places
        kept = {p.name: sha(p) for p in (job / "input").iterdir()}
        assert kept == expected[name], f"{name}: originals changed (seed {seed})"
    assert os.listdir(root / "working") == []
    assert [p for p in os.listdir(root / "inbox")] == []
    assert leftovers(root) == []
    outcomes = Counter(json.loads((p[0] / "result.json").read_text())["status"] for p in seen.values())
    with capsys.disabled():
        print(f"\ncrash test (seed {seed}): survived {kills} kills; {len(seen)} jobs: {dict(outcomes)}")


@pytest.mark.timeout(420)
def test_four_daemons_share_a_root(root: Path, checkpoint: Path, daemons: list, tmp_path: Path) -> None:
    harness.write_config(
        root,
        checkpoint,
        intake={"settle_seconds": 0.2, "scan_interval_seconds": 0.5},
        log={"level": "warning"},
    )
    calls = tmp_path / "calls.log"
    extra = {"TINY_SHARP_GRID": "4", "TINY_SHARP_CALLS": str(calls)}
    running = [Daemon(root, extra_env=extra) for _ in range(4)]
    daemons.extend(running)
    total = 200
    base = np.full((1536, 1536, 3), 128, np.uint8)
    staging = root / "inbox" / ".staging"
    staging.mkdir(parents=True)
    for i in range(total):
        base[0, 1] = (i % 256, i // 256, 7)
        folder = staging / f"job{i:03d}"
        folder.mkdir()
        corpus.write_png(folder / "p.png", base)
    for folder in sorted(staging.iterdir()):
        os.rename(folder, root / "inbox" / folder.name)
    staging.rmdir()

    wait_for(
        lambda: len(jobs(root, "done")) + len(jobs(root, "failed")) >= total,
        360,
        lambda: f"{total} jobs\n{running[0].text()[-2000:]}",
        interval=0.5,
    )
    for d in running:
        assert d.stop() == 0
    assert len(jobs(root, "done")) == total
    assert sorted(final_states(root)) == [f"job{i:03d}" for i in range(total)]
    tags = Counter(line.split()[1] for line in calls.read_text().splitlines())
    assert len(tags) == total
    assert set(tags.values()) == {1}, [t for t, n in tags.items() if n > 1]
    workers = {line.split()[0] for line in calls.read_text().splitlines()}
    assert len(workers) >= 2, "the daemons did not share the work"
