"""From a photo task to the model worker's request: one image, outputs in the attempt folder.

The task's ``options`` are the job's output settings, named like the request's fields
(``formats``, ``f_px``, ``previews``, ...); anything else is refused rather than ignored, so a
worker never makes outputs other than the job asked for. Types are checked by the protocol's
own decoder, the one the model worker applies to every request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sharpmld.cluster.task import BadTask, PhotoTask
from sharpmld.core.config import KNOWN_FORMATS, Config
from sharpmld.core.errors import ProtocolError
from sharpmld.daemon.stems import output_stem
from sharpmld.protocol import CONFIG_FIELDS, ImageTask, JobRequest, decode, encode

OPTION_NAMES = frozenset({*CONFIG_FIELDS, "f_px"})


def photo_path(root: Path, task: PhotoTask) -> Path:
    """Where this host sees the task's photo: the task's paths are relative to the shared root."""
    return root / task.job_dir / task.photo


def photo_request(config: Config, task: PhotoTask, out_dir: Path) -> JobRequest:
    """The request that makes ``task``'s outputs in ``out_dir``; BadTask for unusable options."""
    unknown = sorted(set(task.options) - OPTION_NAMES)
    if unknown:
        raise BadTask(f"unknown options {', '.join(unknown)}; known: {', '.join(sorted(OPTION_NAMES))}")
    options: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in task.options.items()}
    image = ImageTask(task.photo, str(photo_path(config.root, task)), output_stem(task.photo, set()))
    try:
        request = JobRequest.configured(
            config, job_id=task.job_id, job_dir=str(out_dir), images=(image,), **options
        )
        checked = decode(encode(request))
    except (TypeError, ValueError, ProtocolError) as exc:
        raise BadTask(f"options of the wrong kind: {exc}") from exc
    assert isinstance(checked, JobRequest)
    bad = [f for f in checked.formats if f not in KNOWN_FORMATS]
    if bad or not checked.formats:
        raise BadTask(f"unknown formats {bad}; known: {', '.join(KNOWN_FORMATS)}")
    return checked
