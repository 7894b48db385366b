"""An image seen before is not run through the model again; its outputs are reused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.intake import corpus
from tests.support.harness import Daemon, jobs, wait_for

pytestmark = pytest.mark.timeout(120)


def test_second_identical_job_comes_from_the_cache(root: Path, tmp_path: Path, daemons: list) -> None:
    calls = tmp_path / "calls.log"
    src = tmp_path / "first"
    src.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        corpus.write_png(src / f"p{i}.png", (rng.random((40, 50, 3)) * 255).astype(np.uint8))
    d = Daemon(root, extra_env={"TINY_SHARP_CALLS": str(calls)})
    daemons.append(d)
    shutil.copytree(src, root / "inbox" / "first")
    wait_for(lambda: len(jobs(root, "done")) == 1, 60, lambda: d.text()[-2000:])
    assert len(calls.read_text().splitlines()) == 2

    shutil.copytree(src, root / "inbox" / "again")  # same pixels, new names for the folder
    (root / "inbox" / "again" / "p1.png").rename(root / "inbox" / "again" / "renamed.png")
    wait_for(lambda: len(jobs(root, "done")) == 2, 60, lambda: d.text()[-2000:])
    assert len(calls.read_text().splitlines()) == 2  # the model was not called again

    first, again = (json.loads((j / "result.json").read_text()) for j in jobs(root, "done"))
    if first["original_name"] != "first":
        first, again = again, first
    assert [i["cached"] for i in first["images"]] == [False, False]
    assert [i["cached"] for i in again["images"]] == [True, True]
    by_pixels = {i["source"]: i for i in first["images"]}
    reused = {i["source"]: i for i in again["images"]}
    assert (
        reused["renamed.png"]["outputs"]["ply"]["sha256"] == by_pixels["p1.png"]["outputs"]["ply"]["sha256"]
    )
    assert reused["renamed.png"]["outputs"]["ply"]["path"] == "renamed.ply"
    again_dir = root / "done" / again["job_id"]
    assert (again_dir / "renamed.ply").stat().st_size == reused["renamed.png"]["outputs"]["ply"]["bytes"]

    # Outputs deleted (as retention would): the entry is forgotten, the model runs again.
    shutil.rmtree(root / "done" / first["job_id"])
    shutil.rmtree(again_dir)
    shutil.copytree(src, root / "inbox" / "third")
    wait_for(lambda: len(jobs(root, "done")) == 1, 60, lambda: d.text()[-2000:])
    assert len(calls.read_text().splitlines()) == 4
    assert d.stop() == 0
