"""What a job leaves behind for people and for later jobs: progress, result and reuse index.

``progress.json`` is rewritten after every worker event so ``sharpmld status`` can show the
job in flight; ``result.json`` (and ``index.html`` for a job that made splats) is written
once when the job ends; outputs of a finished job are indexed for reuse at the place they
will have in ``done/``. Each file goes through the atomic writers, so a reader never sees
half of one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sharpmld.core import fsio
from sharpmld.core.errors import SharpmldError
from sharpmld.daemon import index_page, report
from sharpmld.protocol import JobRequest
from sharpmld.queue import cache_index as cache
from sharpmld.queue.layout import PROGRESS_FILE, Layout
from sharpmld.queue.lease import Owner
from sharpmld.queue.record import Job, utcnow

# The states of one photo in progress.json's ``photos``, in the order a photo goes through them.
PHOTO_WAITING, PHOTO_WORKING, PHOTO_DONE, PHOTO_FAILED = "waiting", "working", "done", "failed"


def photo_states(
    request: JobRequest | None, *, done: set[str], failed: set[str], started: set[str]
) -> list[dict[str, str]]:
    """Each photo the worker was given, with where it stands, in the order the worker takes them.

    A page that shows a job while it runs needs this per photo: a count alone cannot tell
    which photo failed or which one the model is on. "Working" is every photo started and
    not yet ended: the worker starts the next photo while the last one's files are written.
    """
    photos = []
    for task in request.images if request else ():
        if task.rel in done:
            state = PHOTO_DONE
        elif task.rel in failed:
            state = PHOTO_FAILED
        elif task.rel in started:
            state = PHOTO_WORKING
        else:
            state = PHOTO_WAITING
        photos.append({"source": task.rel, "state": state})
    return photos


def write_progress(
    job: Job,
    request: JobRequest | None,
    *,
    images_done: int,
    started: float,
    current: Any = None,
    photos: list[dict[str, str]] | None = None,
) -> None:
    """Rewrite progress.json: how far the job in flight has come, and what it works on."""
    fsio.write_json(
        job.path / PROGRESS_FILE,
        {
            "job_id": job.job_id,
            "original_name": job.record.original_name,
            "images_total": len(request.images) if request else 0,
            "images_done": images_done,
            "current": current,
            "photos": photos or [],
            "attempt": len(job.record.history),
            "started_at": started,
        },
    )


def result(
    job: Job,
    state: str,
    *,
    started: float,
    engine: dict[str, Any],
    settings: dict[str, Any],
    images: list[dict[str, Any]],
    rejected: list[dict[str, Any]],
    ignored: list[str],
    error: SharpmldError | None,
) -> dict[str, Any]:
    """The content of result.json."""
    record = job.record
    return {
        "job_id": record.job_id,
        "original_name": record.original_name,
        "status": state,
        "host": record.host,
        "attempts": record.attempts,
        "daemon_restarts": record.daemon_restarts,
        "claimed_at": record.claimed_at,
        "finished_at": utcnow(),
        "duration_seconds": round(time.time() - started, 3),
        "engine": engine,
        "settings": settings,
        "images": images,
        "rejected": rejected,
        "ignored": ignored,
        "error": error.to_dict() if error else None,
        "history": record.history,
    }


def publish(job_dir: Path, content: dict[str, Any], *, index: bool, log: Any) -> None:
    """Write result.json, and with ``index`` (a job that made splats) index.html, best effort."""
    report.write_result(job_dir, content)
    if index:
        try:
            index_page.write_index(job_dir, content)
        except OSError as exc:
            log.warning("index.html not written", reason=str(exc))


def remember_outputs(
    layout: Layout,
    job: Job,
    request: JobRequest | None,
    images: list[dict[str, Any]],
    log: Any,
    owner: Owner | None = None,
) -> None:
    """Index this job's outputs for reuse, at the place they will have in done/."""
    if request is None or not request.cache_dir:
        return
    final = layout.done / job.job_id
    stems = {t.rel: t.stem for t in request.images}
    for image in images:
        key = image.get("cache_key")
        if not key or image["source"] not in stems:
            continue
        outputs = {
            name: {**item, "rel": item["path"], "path": str(final / item["path"])}
            for name, item in image.get("outputs", {}).items()
            if "path" in item  # e.g. a preview that failed has none
        }
        entry = {k: v for k, v in image.items() if k not in ("outputs", "timings", "source")}
        entry.update(job_id=job.job_id, stem=stems[image["source"]], outputs=outputs)
        try:
            cache.store(Path(request.cache_dir), key, entry, owner=owner)
        except OSError as exc:
            log.warning("could not index outputs for reuse", error=str(exc))
