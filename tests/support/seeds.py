"""One replayable seed per randomised test: printed, and taken from the environment to replay.

Set ``SHARPMLD_TEST_SEED=<n>`` to rerun a randomised test with the seed a failure printed. The
autouse fixture in tests/conftest.py keeps this variable (it strips every other ``SHARPMLD_``
one so a developer's settings cannot leak into a test).
"""

from __future__ import annotations

import os
import time

SEED_ENV = "SHARPMLD_TEST_SEED"


def choose_seed() -> int:
    """The seed to use: ``$SHARPMLD_TEST_SEED`` if set, else a fresh one."""
    raw = os.environ.get(SEED_ENV, "").strip()
    return int(raw) if raw else time.time_ns() % 1_000_000


def replay_hint(seed: int) -> str:
    """The words to print next to a failure so that it can be replayed."""
    return f"seed {seed} (replay: {SEED_ENV}={seed})"
