"""A seed printed by a failing randomised test can be fed back to replay it."""

from __future__ import annotations

import subprocess
import sys

from tests.support import harness
from tests.support.seeds import SEED_ENV, choose_seed, replay_hint


def test_seed_is_printed_for_replay() -> None:
    """Also the probe the next test runs in a child pytest: it reports the seed it got."""
    seed = choose_seed()
    print(f"probe: {replay_hint(seed)}")
    assert str(seed) in replay_hint(seed) and SEED_ENV in replay_hint(seed)


def test_seed_from_the_environment_survives_the_env_fixture() -> None:
    env = harness.env({SEED_ENV: "424242"})
    env[SEED_ENV] = "424242"  # harness.env strips SHARPMLD_* for daemons; a test run keeps it
    probe = f"{__file__}::test_seed_is_printed_for_replay"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=harness.REPO,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "probe: seed 424242 " in run.stdout, run.stdout
