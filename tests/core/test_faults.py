"""A crash point that fires leaves one line of evidence, then kills the process at once."""

from __future__ import annotations

import signal
import subprocess
import sys

from sharpmld.core.faults import FIRED
from tests.support import harness

PROBE = "from sharpmld.core.faults import crashpoint; crashpoint('claimed'); print('survived')"


def run_probe(points: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        env=harness.env({"SHARPMLD_CRASHPOINTS": points}),
    )


def test_a_fired_crash_point_says_so_and_dies() -> None:
    run = run_probe("claimed:1")
    assert run.returncode == -signal.SIGKILL
    assert run.stdout == ""
    assert run.stderr.splitlines()[0].startswith(f"{FIRED} claimed (pid ")


def test_other_crash_points_neither_fire_nor_speak() -> None:
    run = run_probe("finished:1")
    assert (run.returncode, run.stdout, run.stderr) == (0, "survived\n", "")
