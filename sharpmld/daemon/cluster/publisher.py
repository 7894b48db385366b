"""Offering a validated job's photos to the workers: one message per photo.

What a worker reads of a task: the photo is ``<shared root>/<job_dir>/<photo>``, its outputs
are named by ``output_stem(photo)``, its attempt and the photo's ``COMMIT`` go under
``<job_dir>``, and ``options`` are the job's output settings, named as the model worker's
request names them (anything else is refused by the worker). So the intake gives each job a
workspace, ``<job>/cluster/``, and stores every valid input there under a flat name of its
own (a hard link to the original in ``input/``, a copy where the volume has no links):
``photo`` is the input's output stem with its extension, which is the very stem a
single-host job gives it (two inputs whose stems clash are told apart there already), so
the gathered outputs land where a single-host job has them.

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
from sharpmld.core import fsio
from sharpmld.daemon.cluster.ledger import Ledger, Photo
from sharpmld.daemon.jobrun import JobRun
from sharpmld.daemon.stems import output_stem
from sharpmld.protocol import CONFIG_FIELDS

CLUSTER_DIR = "cluster"  # in a job's folder: the photos as workers see them, attempts, commits
# The request's settings a job's photos are made with (not video ones: videos are not split).
OPTION_FIELDS = tuple(f for f in CONFIG_FIELDS if not f.startswith("video_"))


def workspace(job_dir: Path) -> Path:
    """The job's folder as the workers see it."""
    return job_dir / CLUSTER_DIR


def photo_key(rel: str, stem: str) -> str:
    """The flat name a photo is stored, published and committed under: its stem, its suffix.

    The worker names outputs by ``output_stem(photo)``; this name gives back ``stem``.
    """
    suffix = Path(rel).suffix
    key = f"{stem}{suffix}"
    return key if output_stem(key, set()) == stem else f"{stem}.photo"


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


def stage(job_dir: Path, ledger: Ledger) -> None:
    """Store each photo in the job's workspace under its key (again after a crash: harmless)."""
    folder = workspace(job_dir)
    folder.mkdir(exist_ok=True)
    for photo in ledger.photos.values():
        target = folder / photo.photo
        if not target.exists():
            fsio.link_or_copy(job_dir / photo.src, target)
    fsio.fsync_dir(folder)


def task_for(run: JobRun, photo: Photo, root: Path) -> PhotoTask:
    """The message for one photo of ``run``."""
    assert run.request is not None
    options: dict[str, Any] = {}
    for name in OPTION_FIELDS:
        value = getattr(run.request, name)
        options[name] = list(value) if isinstance(value, tuple) else value
    options["f_px"] = run.request.f_px
    job_dir = workspace(run.job.path).relative_to(root).as_posix()
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
