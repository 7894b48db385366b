"""The worker's per-job pipeline: decode ahead, infer, write behind.

While image k is in the model, image k+1 is decoded and validated on one thread and the
outputs of image k-1 are post-processed and written on another, so a job of many images keeps
the model busy. At most one image waits on each side, which bounds memory.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sharpmld import cache
from sharpmld.engine import videos
from sharpmld.engine.geometry import unproject
from sharpmld.engine.model import LoadedModel
from sharpmld.engine.protocol import ImageTask, JobRequest
from sharpmld.engine.reuse import pixels_sha256, reuse
from sharpmld.errors import DecodeFailed, ImageRejected, OutputInvalid, SharpmldError
from sharpmld.faults import crashpoint
from sharpmld.formats.gaussians import Gaussians, SceneMeta
from sharpmld.formats.ply import to_vertex_records
from sharpmld.formats.registry import FORMATS
from sharpmld.intake.images import LoadedImage, load_image, write_working_copy
from sharpmld.render import write_previews

INTERNAL_SIZE = 1536
Emit = Callable[[dict[str, Any]], None]


@dataclass
class Decoded:
    """An image ready for the model, or the reason it is not."""

    task: ImageTask
    image: LoadedImage | None = None
    sha256: str = ""
    error: SharpmldError | None = None
    cache_key: str = ""
    timings: dict[str, float] = field(default_factory=dict)


def sha256_file(path: Path) -> str:
    """Streamed SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def decode(task: ImageTask, job_dir: Path, req: JobRequest) -> Decoded:
    """Hash, decode, orient and strip one input; rejections are results, not exceptions."""
    start = time.perf_counter()
    out = Decoded(task)
    try:
        out.sha256 = sha256_file(Path(task.src))
        out.image = load_image(Path(task.src), max_pixels_side=req.max_pixels_side, f_px_override=req.f_px)
        images_dir = job_dir / "images"
        images_dir.mkdir(exist_ok=True)
        write_working_copy(out.image, images_dir / f"{task.stem}.png")
        if req.cache_dir:
            out.cache_key = cache.image_key(req.cache_salt, pixels_sha256(out.image.rgb), out.image.f_px)
    except ImageRejected as exc:
        out.error = exc
    except OSError as exc:
        out.error = DecodeFailed(f"The image could not be read: {exc.strerror or exc}.")
    out.timings["decode"] = time.perf_counter() - start
    return out


@torch.no_grad()
def infer(model: LoadedModel, image: LoadedImage) -> Any:
    """SHARP's pre-processing and forward pass, as ml-sharp's ``predict_image`` does them."""
    device = model.device
    pixels = torch.from_numpy(np.array(image.rgb, dtype=np.uint8, order="C", copy=True)).to(device)
    tensor = pixels.permute(2, 0, 1).float().div_(255.0)[None]
    resized = F.interpolate(tensor, size=(INTERNAL_SIZE, INTERNAL_SIZE), mode="bilinear", align_corners=True)
    disparity_factor = torch.tensor([image.f_px / image.width], dtype=torch.float32, device=device)
    return model.module(resized, disparity_factor)


def write_outputs(
    decoded: Decoded,
    ndc: Any,
    job_dir: Path,
    formats: list[str],
    *,
    previews: bool = False,
    orbit_frames: int = 0,
) -> dict[str, Any]:
    """Unproject, check and write every format; returns the image's entry for result.json."""
    assert decoded.image is not None
    img = decoded.image
    start = time.perf_counter()
    gaussians = unproject(ndc, img.f_px, img.width, img.height)
    _check_finite(gaussians)
    meta = SceneMeta(f_px=img.f_px, width=img.width, height=img.height)
    records = to_vertex_records(gaussians)
    timings = {"postprocess": time.perf_counter() - start}
    outputs: dict[str, Any] = {}
    for name in formats:
        fmt = FORMATS[name]
        path = job_dir / f"{decoded.task.stem}{fmt.suffix}"
        t0 = time.perf_counter()
        fmt.write(path, records, meta)
        crashpoint("output_written")
        timings[f"write_{name}"] = time.perf_counter() - t0
        outputs[name] = describe(path, job_dir)
    if previews:
        t0 = time.perf_counter()
        try:
            outputs.update(write_previews(gaussians, meta, job_dir, decoded.task.stem, orbit_frames))
        except OSError:
            raise  # a full disk is handled like for any other output
        except Exception as exc:  # a preview is a convenience: never lose the image over it
            outputs["preview_error"] = {"message": f"preview failed: {exc}"}
        timings["previews"] = time.perf_counter() - t0
    outputs["image"] = describe(job_dir / "images" / f"{decoded.task.stem}.png", job_dir)
    return {
        "gaussians": len(gaussians),
        "width": img.width,
        "height": img.height,
        "f_px": img.f_px,
        "f_px_source": img.f_px_source,
        "orientation": img.orientation,
        "format": img.format,
        "outputs": outputs,
        "timings": timings,
    }


def _check_finite(g: Gaussians) -> None:
    if len(g) == 0:
        raise OutputInvalid("the model produced no Gaussians for this image")
    for name in ("means", "scales", "quaternions", "colors", "opacities"):
        values = getattr(g, name)
        if not np.isfinite(values).all():
            raise OutputInvalid(f"the model produced NaN or infinite {name} for this image")


def describe(path: Path, job_dir: Path) -> dict[str, Any]:
    """An output's entry in result.json: where, how big, and its hash."""
    return {
        "path": str(path.relative_to(job_dir)),
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
    }


def run_job(req: JobRequest, model: LoadedModel, emit: Emit) -> None:
    """Process every image of ``req``, emitting ``image_started`` / ``image_done`` events."""
    job_dir = Path(req.job_dir)
    tasks = videos.expand(req, emit) if any(t.kind == "video" for t in req.images) else req.images
    with ThreadPoolExecutor(1, "decode") as decoder, ThreadPoolExecutor(1, "write") as writer:
        ahead: Future[Decoded] | None = decoder.submit(decode, tasks[0], job_dir, req) if tasks else None
        behind: Future[None] | None = None
        for index, task in enumerate(tasks):
            assert ahead is not None
            decoded = ahead.result()
            nxt = index + 1
            ahead = decoder.submit(decode, tasks[nxt], job_dir, req) if nxt < len(tasks) else None
            base = {"job_id": req.job_id, "rel": task.rel, "index": index}
            if decoded.error is not None or decoded.image is None:
                emit(
                    {
                        "ev": "image_done",
                        **base,
                        "ok": False,
                        "sha256": decoded.sha256,
                        "error": _error_dict(decoded.error),
                    }
                )
                continue
            hit = (
                cache.lookup(Path(req.cache_dir), decoded.cache_key)
                if req.cache_dir and decoded.cache_key
                else None
            )
            if hit is not None:
                entry = {**reuse(hit, job_dir, task.stem), "timings": decoded.timings}
                entry["cache_key"] = decoded.cache_key
                emit({"ev": "image_done", **base, "ok": True, "sha256": decoded.sha256, "result": entry})
                continue
            emit({"ev": "image_started", **base})
            t0 = time.perf_counter()
            try:
                ndc = infer(model, decoded.image)
            except Exception as exc:  # the model refusing one image must not end the job
                emit(
                    {
                        "ev": "image_done",
                        **base,
                        "ok": False,
                        "sha256": decoded.sha256,
                        "error": {"code": "model_error", "message": f"the model failed: {exc}"},
                    }
                )
                continue
            decoded.timings["inference"] = time.perf_counter() - t0
            if behind is not None:
                behind.result()
            behind = writer.submit(_finish_image, decoded, ndc, job_dir, req, base, emit)
        if behind is not None:
            behind.result()
    emit({"ev": "job_done", "job_id": req.job_id})


def _finish_image(
    decoded: Decoded, ndc: Any, job_dir: Path, req: JobRequest, base: dict[str, Any], emit: Emit
) -> None:
    try:
        entry = write_outputs(
            decoded, ndc, job_dir, req.formats, previews=req.previews, orbit_frames=req.orbit_frames
        )
    except OSError as exc:
        import errno

        code = {errno.ENOSPC: "disk_full", errno.EDQUOT: "disk_full", errno.EFBIG: "output_too_large"}.get(
            exc.errno or 0, "write_failed"
        )
        emit(
            {
                "ev": "image_done",
                **base,
                "ok": False,
                "sha256": decoded.sha256,
                "error": {"code": code, "message": f"writing the outputs failed: {exc}"},
            }
        )
        return
    except Exception as exc:
        emit(
            {
                "ev": "image_done",
                **base,
                "ok": False,
                "sha256": decoded.sha256,
                "error": _error_dict(exc),
            }
        )
        return
    entry["timings"] = {**decoded.timings, **entry["timings"]}
    if decoded.cache_key:
        entry.update(cached=False, cache_key=decoded.cache_key)
    emit({"ev": "image_done", **base, "ok": True, "sha256": decoded.sha256, "result": entry})


def _error_dict(exc: BaseException | None) -> dict[str, Any]:
    if isinstance(exc, SharpmldError):
        return {"code": exc.code, "message": exc.message}
    return {"code": "internal_error", "message": f"unexpected error: {exc!r}"}
