"""What the worker reports for a job: real ``run_job`` runs with the tiny model, in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sharpmld.protocol import Event, ImageDone, ImageFailed, ImageTask, JobRequest, WorkerWarning
from sharpmld.queue import cache_index as cache
from sharpmld.worker import pipeline
from sharpmld.worker.model import LoadedModel, load_model
from tests.intake import corpus


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> LoadedModel:
    return load_model("tiny_sharp:create", checkpoint, "cpu")


def _photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        rgb = (np.random.default_rng(i).random((48, 64, 3)) * 255).astype(np.uint8)
        path = folder / f"p{i}.jpg"
        corpus.write_jpeg(path, rgb)
        paths.append(path)
    return paths


def _request(job_dir: Path, photos: list[Path], **settings: Any) -> JobRequest:
    job_dir.mkdir(parents=True, exist_ok=True)
    tasks = tuple(ImageTask(p.name, str(p), p.stem) for p in photos)
    return JobRequest(job_id=job_dir.name, job_dir=str(job_dir), images=tasks, **settings)


def _run(req: JobRequest, model: LoadedModel) -> list[Event]:
    events: list[Event] = []
    pipeline.run_job(req, model, events.append)
    return events


def _done(events: list[Event]) -> list[ImageDone]:
    return [e for e in events if isinstance(e, ImageDone)]


def _cache_everything(tmp_path: Path, model: LoadedModel, photos: list[Path]) -> Path:
    """Run a first job and index its outputs, as the daemon does when a job is done."""
    cache_dir = tmp_path / "cache"
    first = tmp_path / "first"
    events = _run(_request(first, photos, cache_dir=str(cache_dir), cache_salt="s", previews=False), model)
    for event in _done(events):
        result = event.result
        outputs = {
            name: {**item, "rel": item["path"], "path": str(first / item["path"])}
            for name, item in result["outputs"].items()
        }
        entry = {k: v for k, v in result.items() if k not in ("outputs", "timings")}
        entry.update(job_id="first", stem=Path(event.rel).stem, outputs=outputs)
        cache.store(cache_dir, result["cache_key"], entry)
    return cache_dir


def _refuse(*_: Any, **__: Any) -> None:
    raise PermissionError(13, "Permission denied")


@pytest.mark.parametrize("where", ["outputs", "stale_entry"])
def test_a_cache_that_cannot_be_read_is_a_miss(
    tmp_path: Path, model: LoadedModel, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    photos = _photos(tmp_path / "in", 2)
    cache_dir = _cache_everything(tmp_path, model, photos)
    if where == "outputs":  # the cached files cannot be read (another user's)
        monkeypatch.setattr(cache, "link_or_copy", _refuse)
    else:  # an entry whose files are gone cannot be forgotten (a read-only cache)
        for p in photos:
            (tmp_path / "first" / f"{p.stem}.ply").unlink()
        monkeypatch.setattr(Path, "unlink", _refuse)
    job = tmp_path / "second"
    events = _run(_request(job, photos, cache_dir=str(cache_dir), cache_salt="s", previews=False), model)
    done = _done(events)
    assert [e.rel for e in done] == [p.name for p in photos]
    assert all(not e.result["cached"] for e in done)
    assert all((job / f"{p.stem}.ply").stat().st_size > 0 for p in photos)
    warnings = [e for e in events if isinstance(e, WorkerWarning)]
    assert len(warnings) == 1 and "cache" in warnings[0].message


def test_an_unexpected_error_reaches_a_person_without_a_repr(
    tmp_path: Path, model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "write_outputs", broken)
    events = _run(_request(tmp_path / "job", _photos(tmp_path / "in", 1), previews=False), model)
    (failed,) = [e for e in events if isinstance(e, ImageFailed | ImageDone)]
    assert isinstance(failed, ImageFailed) and failed.code == "internal_error"
    assert "RuntimeError(" not in failed.message
    assert "RuntimeError('boom')" in failed.detail


def _spz_version(path: Path) -> int:
    import gzip

    return int.from_bytes(gzip.decompress(path.read_bytes())[4:8], "little")


def _ply_elements(path: Path) -> list[str]:
    header = path.read_bytes().split(b"end_header\n")[0].decode("ascii")
    return [line.split()[1] for line in header.splitlines() if line.startswith("element ")]


def test_the_request_chooses_the_ply_layout_and_spz_version(tmp_path: Path, model: LoadedModel) -> None:
    photos = _photos(tmp_path / "in", 1)
    plain = tmp_path / "plain"
    _run(_request(plain, photos, formats=("ply", "spz"), previews=False), model)
    assert _ply_elements(plain / "p0.ply") == ["vertex"]
    assert _spz_version(plain / "p0.spz") == 2
    sharp = tmp_path / "sharp"
    request = _request(
        sharp, photos, formats=("ply", "spz"), previews=False, ply_layout="ml-sharp", spz_version=3
    )
    _run(request, model)
    assert _ply_elements(sharp / "p0.ply")[:3] == ["vertex", "extrinsic", "intrinsic"]
    assert _spz_version(sharp / "p0.spz") == 3
    # The vertex table is the same bytes in both layouts.
    plain_body = (plain / "p0.ply").read_bytes().split(b"end_header\n", 1)[1]
    sharp_body = (sharp / "p0.ply").read_bytes().split(b"end_header\n", 1)[1]
    assert plain_body and len(plain_body) % 56 == 0
    assert sharp_body[: len(plain_body)] == plain_body
