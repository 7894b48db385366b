"""Nothing lost, nothing twice: real daemons killed at random moments, and daemons racing."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sharpmld.core.faults import FIRED
from tests.intake import corpus
from tests.support import harness
from tests.support.harness import Daemon, jobs, wait_for
from tests.support.seeds import choose_seed, replay_hint

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


def fired_points(text: str) -> Counter[str]:
    """The crash points a daemon (or its worker) reached, from the line each writes first."""
    return Counter(line.split(FIRED, 1)[1].split()[0] for line in text.splitlines() if FIRED in line)


# Rounds: at least MIN_ROUNDS, more (up to MAX_ROUNDS) until every crash point has fired.
MIN_ROUNDS = 24
MAX_ROUNDS = 60
MAX_ATTEMPTS = 4
# Failures the crashes alone can explain: FAILED_CODES are the only ones they can cause.
FAILED_CODES = {"too_many_attempts", "engine_crash"}


@pytest.mark.timeout(900)
def test_kill_at_random_moments_loses_nothing(
    root: Path, checkpoint: Path, daemons: list, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.write_config(
        root,
        checkpoint,
        intake={"settle_seconds": 0.2, "scan_interval_seconds": 0.3},
        queue={"max_attempts": MAX_ATTEMPTS, "heartbeat_seconds": 0.5},
        log={"level": "info"},
    )
    seed = choose_seed()
    with capsys.disabled():
        print(f"\ncrash test: {replay_hint(seed)}")
    rng = random.Random(seed)
    expected: dict[str, dict[str, str]] = {}
    fired: Counter[str] = Counter({point: 0 for point in CRASHPOINTS})
    kills = 0
    round_no = 0
    while round_no < MIN_ROUNDS or (round_no < MAX_ROUNDS and min(fired.values()) == 0):
        for _ in range(2):
            name = f"job{len(expected):03d}"
            expected[name] = submit(root, name, rng.randint(1, 3), len(expected))
        extra = {"TINY_SHARP_GRID": "8", "TINY_SHARP_SLEEP": "0.2"}
        if round_no % 2 == 0:
            # The point fired least so far, so rare points (adopted) get more chances.
            least = min(fired.values())
            point = rng.choice([p for p in CRASHPOINTS if fired[p] == least])
            extra["SHARPMLD_CRASHPOINTS"] = f"{point}:1.0"  # at its first pass: every armed round counts
            lifetime = 8.0  # long enough to reach the point; the daemon usually dies sooner
        else:
            lifetime = rng.uniform(1.0, 6.0)  # a plain kill at a random moment
        d = Daemon(root, extra_env=extra)
        daemons.append(d)
        try:  # until a crash point kills it, or its lifetime is up
            d.proc.wait(timeout=lifetime)
        except subprocess.TimeoutExpired:
            d.proc.send_signal(signal.SIGKILL)
        d.kill()
        fired.update(fired_points(d.text()))
        kills += 1
        round_no += 1

    final = Daemon(root, "--burst", extra_env={"TINY_SHARP_GRID": "8"})
    daemons.append(final)
    assert final.wait(timeout=240) == 0, final.text()[-3000:]
    hint = replay_hint(seed)

    never = sorted(p for p in CRASHPOINTS if fired[p] == 0)
    assert not never, f"crash points that never fired in {round_no} rounds: {never} ({hint})"
    seen = final_states(root)
    assert sorted(seen) == sorted(expected), hint
    for name, places in seen.items():
        assert len(places) == 1, f"{name} finished twice: {places} ({hint})"
        (job,) = places
        kept = {p.name: sha(p) for p in (job / "input").iterdir()}
        assert kept == expected[name], f"{name}: originals changed ({hint})"
    assert os.listdir(root / "working") == []
    assert [p for p in os.listdir(root / "inbox")] == []
    assert leftovers(root) == []

    # Every input is a valid photo, so only the crashes can fail a job, and only by using up
    # its attempts: each attempt cut short is one death (a round's daemon, or a worker at
    # output_written), a job fails after MAX_ATTEMPTS of them, one job runs at a time.
    deaths = kills + fired["output_written"]
    failed = {
        name: json.loads((p[0] / "error.json").read_text())["code"]
        for name, p in seen.items()
        if p[0].parent.name == "failed"
    }
    assert set(failed.values()) <= FAILED_CODES, f"{failed} ({hint})"
    assert len(failed) <= deaths // MAX_ATTEMPTS, f"{len(failed)} failed after {deaths} deaths ({hint})"
    outcomes = Counter(json.loads((p[0] / "result.json").read_text())["status"] for p in seen.values())
    assert outcomes["done"] == len(expected) - len(failed), hint
    with capsys.disabled():
        print(
            f"crash test ({hint}): {kills} daemons killed in {round_no} rounds, crash points fired "
            f"{dict(fired)}; {len(seen)} jobs: {dict(outcomes)}"
        )


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
