"""result.json says which colour profile each photo had and whether it was converted: real
``run_job`` runs with the tiny model, in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sharpmld.protocol import Event, ImageDone, ImageTask, JobRequest
from sharpmld.queue import cache_index as cache
from sharpmld.worker import pipeline
from sharpmld.worker.model import LoadedModel, load_model
from tests.worker import icc


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> LoadedModel:
    return load_model("tiny_sharp:create", checkpoint, "cpu")


def _photos(folder: Path) -> list[Path]:
    folder.mkdir()
    rgb = (np.random.default_rng(3).random((48, 64, 3)) * 255).astype(np.uint8)
    p3, bare, broken = folder / "p3.jpg", folder / "bare.png", folder / "broken.png"
    Image.fromarray(rgb).save(p3, quality=95, icc_profile=icc.p3())
    Image.fromarray(rgb).save(bare)
    Image.fromarray(rgb).save(broken, icc_profile=b"garbage, not a profile")
    return [p3, bare, broken]


def _run(job_dir: Path, photos: list[Path], model: LoadedModel, **settings: Any) -> dict[str, dict[str, Any]]:
    job_dir.mkdir()
    tasks = tuple(ImageTask(p.name, str(p), p.stem) for p in photos)
    req = JobRequest(job_id=job_dir.name, job_dir=str(job_dir), images=tasks, previews=False, **settings)
    events: list[Event] = []
    pipeline.run_job(req, model, events.append)
    return {e.rel: e.result for e in events if isinstance(e, ImageDone)}


def test_each_result_names_its_profile(tmp_path: Path, model: LoadedModel) -> None:
    photos = _photos(tmp_path / "in")
    results = _run(tmp_path / "job", photos, model)
    assert results["p3.jpg"]["colour"] == {"profile": "Display P3", "converted": True}
    assert results["bare.png"]["colour"] == {"profile": "none", "converted": False}
    broken = results["broken.png"]["colour"]
    assert broken["profile"] == "unreadable" and not broken["converted"]
    assert "could not be read" in broken["note"]
    as_is = _run(tmp_path / "as-is", photos[:1], model, colour="as-is")
    assert as_is["p3.jpg"]["colour"] == {"profile": "Display P3", "converted": False}
    # The working copy the model saw holds the converted pixels in one case, not the other.
    with (
        Image.open(tmp_path / "job" / "images" / "p3.png") as a,
        Image.open(tmp_path / "as-is" / "images" / "p3.png") as b,
    ):
        assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_a_cached_result_still_names_the_profile(tmp_path: Path, model: LoadedModel) -> None:
    photos = _photos(tmp_path / "in")[:1]
    cache_dir = tmp_path / "cache"
    first_dir = tmp_path / "first"
    first = _run(first_dir, photos, model, cache_dir=str(cache_dir), cache_salt="s")
    result = first["p3.jpg"]
    outputs = {
        name: {**item, "rel": item["path"], "path": str(first_dir / item["path"])}
        for name, item in result["outputs"].items()
    }
    entry = {k: v for k, v in result.items() if k not in ("outputs", "timings", "colour")}
    entry.update(job_id="first", stem="p3", outputs=outputs)  # as cached before the setting
    cache.store(cache_dir, result["cache_key"], entry)
    again = _run(tmp_path / "again", photos, model, cache_dir=str(cache_dir), cache_salt="s")
    assert again["p3.jpg"]["cached"] is True
    assert again["p3.jpg"]["colour"] == {"profile": "Display P3", "converted": True}
