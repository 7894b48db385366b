"""Turning a job's videos into frame tasks before the image pipeline starts (worker side)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sharpmld.core.errors import SharpmldError
from sharpmld.protocol import Event, ImageFailed, ImageStarted, ImageTask, JobRequest, TasksAdded
from sharpmld.worker import video

FRAMES_DIR = "frames"


def expand(req: JobRequest, emit: Callable[[Event], None]) -> list[ImageTask]:
    """The job's tasks with each video replaced by its chosen frames, in order.

    The daemon is told about the frames (``tasks_added``) so progress and results can name
    them; a video that cannot be used is reported like a rejected image.
    """
    job_dir = Path(req.job_dir)
    tasks: list[ImageTask] = []
    for index, task in enumerate(req.images):
        if task.kind != "video":
            tasks.append(task)
            continue
        emit(ImageStarted(req.job_id, task.rel, index))  # extraction counts as progress on this input
        try:
            frames = video.extract(
                Path(task.src),
                job_dir / FRAMES_DIR / task.stem,
                frames=req.video_frames,
                max_seconds=req.video_max_seconds,
                max_pixels_side=req.max_pixels_side,
            )
        except SharpmldError as exc:
            emit(ImageFailed.of(req.job_id, task.rel, index, exc))
            continue
        added = tuple(
            ImageTask(
                rel=f"{task.rel}@{f.seconds:.2f}s",
                src=str(f.path),
                stem=f"{task.stem}-t{f.seconds:07.2f}".replace(".", "_"),
            )
            for f in frames
        )
        emit(TasksAdded(req.job_id, task.rel, added))
        tasks.extend(added)
    return tasks
