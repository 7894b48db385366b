"""Shared fixtures: a tiny SHARP-contract model with a real checkpoint, and temp roots."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import harness
from tests.support.browser import browser  # noqa: F401  (a fixture, for every test)
from tests.support.seeds import SEED_ENV

sys.path.insert(0, str(harness.SUPPORT))


@pytest.fixture(scope="session", autouse=True)
def _machine_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The per-machine state (this machine's id) in a temp folder, not the developer's home;
    set in the environment so that the daemons the tests start use it too."""
    before = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("machine-state"))
    yield
    if before is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = before


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake HOME, so that ~/Library and ~/Documents are temp folders."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    return path


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the tiny model, written through torch.save like a real one."""
    import tiny_sharp

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    tiny_sharp.write_checkpoint(path)
    return path


@pytest.fixture
def root(tmp_path: Path, checkpoint: Path) -> Path:
    """A fresh sharpmld root configured for the tiny model."""
    path = tmp_path / "root"
    harness.write_config(path, checkpoint)
    return path


@pytest.fixture
def daemons() -> Iterator[list[harness.Daemon]]:
    """Collects daemons started by a test and makes sure none outlives it."""
    started: list[harness.Daemon] = []
    yield started
    for d in started:
        d.kill()


@pytest.fixture(autouse=True)
def _no_user_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's SHARPMLD_* settings must not leak into tests; the replay seed is kept."""
    for key in list(os.environ):
        if key.startswith("SHARPMLD_") and key != SEED_ENV:
            monkeypatch.delenv(key)
