"""Offering a validated job's photos to the workers: one message per photo.

A photo's task names its job's folder relative to the shared root (each host mounts it where
it likes) and carries, in ``options``, where the original is (``src``, relative to the job's
folder: the original stays in ``input/``, read-only for workers), the stem to name outputs by
(so two photos of a job never write the same output name), and the job's output settings.
``photo`` must be one flat name (it is part of the message id and of the COMMIT file's
name): the input's own name when it has no folder, else its output stem with its extension.

Publishing is a set of broker futures; ``Publication.outcome`` is asked in later steps and
answers only when every one came back. A single failure fails the lot: the whole job is
published again later, and the broker drops the photos it already has.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

from sharpmld.cluster.broker import Broker, Published
from sharpmld.cluster.subjects import band_for
from sharpmld.cluster.task import PhotoTask
from sharpmld.daemon.cluster.ledger import Ledger, Photo
from sharpmld.daemon.jobrun import JobRun


def photo_key(rel: str, stem: str) -> str:
    """The flat name a photo is known by on the broker and in ``commits/``."""
    if "/" not in rel and rel not in (".", ".."):
        return rel
    suffix = Path(rel).suffix
    return f"{stem}{suffix}"


def plan(run: JobRun) -> Ledger:
    """The ledger a prepared job will have once published (sequences still unknown)."""
    assert run.request is not None
    photos: dict[str, Photo] = {}
    for task in run.request.images:
        if task.kind != "image":
            continue
        key = photo_key(task.rel, task.stem)
        src = Path(task.src).relative_to(run.job.path).as_posix()
        photos[key] = Photo(photo=key, rel=task.rel, stem=task.stem, src=src)
    return Ledger(band=band_for(run.job.record.priority), photos=photos)


def task_for(run: JobRun, photo: Photo, root: Path) -> PhotoTask:
    """The message for one photo of ``run``."""
    options: dict[str, Any] = {
        "src": photo.src,
        "rel": photo.rel,
        "stem": photo.stem,
        "formats": list(run.formats),
        "f_px": run.spec.f_px,
    }
    job_dir = run.job.path.relative_to(root).as_posix()
    return PhotoTask(job_id=run.job.job_id, photo=photo.photo, job_dir=job_dir, options=options)


class Publication:
    """The broker's answers, still coming, for some photos of one job."""

    def __init__(self, broker: Broker, run: JobRun, ledger: Ledger, photos: list[str], root: Path) -> None:
        self.ledger = ledger
        self.futures: dict[str, Future[Published]] = {
            key: broker.publish(
                ledger.band, run.job.job_id, key, task_for(run, ledger.photos[key], root).to_bytes()
            )
            for key in photos
        }

    def outcome(self) -> dict[str, Published] | None:
        """Every photo's answer once all came; None while some are due. Raises the first failure."""
        if not all(f.done() for f in self.futures.values()):
            return None
        return {key: f.result() for key, f in self.futures.items()}

    def cancel(self) -> None:
        for f in self.futures.values():
            f.cancel()
