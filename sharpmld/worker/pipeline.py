"""The worker's per-job pipeline: decode ahead, infer, write behind.

While image k is in the model, image k+1 is decoded and validated on one thread and the
outputs of image k-1 are post-processed and written on another, so a job of many images keeps
the model busy. At most one image waits on each side, which bounds memory.

On an accelerator (MPS, CUDA) every device operation stays on the model's thread: the input
is moved and resized there, and the Gaussians are unprojected there and come back to the CPU
before the write-behind thread sees them (``device`` says why). On the CPU, decode-ahead also
prepares the input and write-behind also unprojects, as they can do so safely there.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sharpmld.core.errors import DecodeFailed, ImageRejected, ModelError, OutputInvalid, SharpmldError
from sharpmld.core.faults import crashpoint
from sharpmld.formats.gaussians import Gaussians, SceneMeta
from sharpmld.formats.ply import to_vertex_records
from sharpmld.formats.registry import DEFAULT_OPTIONS, FORMATS, WriteOptions
from sharpmld.protocol import Event, ImageTask, JobDone, JobRequest, WorkerWarning
from sharpmld.queue import cache_index as cache
from sharpmld.queue.layout import IMAGES_DIR
from sharpmld.worker import device as accel
from sharpmld.worker import video_tasks as videos
from sharpmld.worker.decode import LoadedImage, load_image, write_working_copy
from sharpmld.worker.geometry import unproject
from sharpmld.worker.model import LoadedModel, to_float32
from sharpmld.worker.outcome import Slot, write_error
from sharpmld.worker.preview import write_previews
from sharpmld.worker.reuse import CacheReader, pixels_sha256

INTERNAL_SIZE = 1536
Emit = Callable[[Event], None]


@dataclass
class Decoded:
    """An image ready for the model, or the reason it is not."""

    task: ImageTask
    image: LoadedImage | None = None
    sha256: str = ""
    error: SharpmldError | None = None
    cache_key: str = ""
    model_input: tuple[Any, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    unprojected: tuple[Gaussians, float] | None = None  # made on the model's thread, and its time


def sha256_file(path: Path) -> str:
    """Streamed SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def decode(
    task: ImageTask,
    job_dir: Path,
    req: JobRequest,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Decoded:
    """Hash, decode, orient and strip one input; rejections are results, not exceptions.

    With ``device`` (the CPU only: see ``device``), the model's input tensor is prepared here
    too, in the model's ``dtype`` and ``memory_format``, so that the decode-ahead thread, not
    the model's turn, pays for the resize.
    """
    start = time.perf_counter()
    out = Decoded(task)
    try:
        out.sha256 = sha256_file(Path(task.src))
        out.image = load_image(
            Path(task.src), max_pixels_side=req.max_pixels_side, f_px_override=req.f_px, colour=req.colour
        )
        if device is not None:
            out.model_input = prepare_input(out.image, device, dtype, memory_format)
        if req.cache_dir:
            out.cache_key = cache.image_key(req.cache_salt, pixels_sha256(out.image.rgb), out.image.f_px)
    except ImageRejected as exc:
        out.error = exc
    except OSError as exc:
        out.error = DecodeFailed(f"The image could not be read: {exc.strerror or exc}.")
    out.timings["decode"] = time.perf_counter() - start
    return out


@torch.no_grad()
def prepare_input(
    image: LoadedImage,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SHARP's pre-processing, as ml-sharp's ``predict_image`` does it: RGB in [0, 1], resized
    bilinearly (align_corners) to 1536 x 1536, and ``disparity_factor = f_px / width``.

    The resize is done in fp32, as ml-sharp does, and only its result is cast to the model's
    ``dtype`` and ``memory_format``: the fp32 image (27 MiB) is then freed here instead of
    being held, beside its half-precision copy, for the whole forward pass. The disparity
    factor stays fp32 (``infer`` casts that one number).
    """
    pixels = torch.from_numpy(np.array(image.rgb, dtype=np.uint8, order="C", copy=True)).to(device)
    tensor = pixels.permute(2, 0, 1).float().div_(255.0)[None]
    resized = F.interpolate(tensor, size=(INTERNAL_SIZE, INTERNAL_SIZE), mode="bilinear", align_corners=True)
    resized = resized.to(dtype=dtype, memory_format=memory_format)
    disparity_factor = torch.tensor([image.f_px / image.width], dtype=torch.float32, device=device)
    return resized, disparity_factor


@torch.no_grad()
def infer(model: LoadedModel, image: LoadedImage, prepared: tuple[Any, Any] | None = None) -> Any:
    """The forward pass, on the input ``decode`` prepared (or preparing it now)."""
    resized, disparity_factor = prepared or prepare_input(
        image, model.device, model.dtype, model.memory_format
    )
    pixels = resized.to(dtype=model.dtype, memory_format=model.memory_format)  # as prepared: no copy
    return to_float32(model.module(pixels, disparity_factor.to(model.dtype)))


def to_gaussians(decoded: Decoded, ndc: Any) -> tuple[Gaussians, float]:
    """The model's NDC output as checked metric Gaussians on the CPU, and the seconds it took."""
    assert decoded.image is not None
    img = decoded.image
    start = time.perf_counter()
    gaussians = unproject(ndc, img.f_px, img.width, img.height)
    _check_finite(gaussians)
    return gaussians, time.perf_counter() - start


def write_options(req: JobRequest) -> WriteOptions:
    """The request's format variants (the protocol carries them as plain fields)."""
    return WriteOptions(ply_layout=req.ply_layout, spz_version=req.spz_version)


def write_outputs(
    decoded: Decoded,
    ndc: Any,
    job_dir: Path,
    formats: Sequence[str],
    options: WriteOptions = DEFAULT_OPTIONS,
) -> tuple[dict[str, Any], Gaussians, SceneMeta]:
    """Unproject, check and write every format (in the variants ``options`` picks) and the
    working copy.

    Returns the image's entry for result.json, and the Gaussians and camera for previews.
    """
    assert decoded.image is not None
    img = decoded.image
    images_dir = job_dir / IMAGES_DIR
    images_dir.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    write_working_copy(img, images_dir / f"{decoded.task.stem}.png")
    copy_seconds = time.perf_counter() - t0
    gaussians, unproject_seconds = decoded.unprojected or to_gaussians(decoded, ndc)
    start = time.perf_counter()
    meta = SceneMeta(f_px=img.f_px, width=img.width, height=img.height)
    records = to_vertex_records(gaussians)
    timings = {"postprocess": unproject_seconds + time.perf_counter() - start, "write_image": copy_seconds}
    outputs: dict[str, Any] = {}
    for name in formats:
        fmt = FORMATS[name]
        path = job_dir / f"{decoded.task.stem}{fmt.suffix}"
        t0 = time.perf_counter()
        fmt.write(path, records, meta, options)
        crashpoint("output_written")
        timings[f"write_{name}"] = time.perf_counter() - t0
        outputs[name] = describe(path, job_dir)
        _check_size(name, outputs[name]["bytes"], len(gaussians))
    outputs["image"] = describe(images_dir / f"{decoded.task.stem}.png", job_dir)
    entry = {
        "gaussians": len(gaussians),
        "width": img.width,
        "height": img.height,
        "f_px": img.f_px,
        "f_px_source": img.f_px_source,
        "orientation": img.orientation,
        "format": img.format,
        "colour": img.colour.as_entry(),
        "outputs": outputs,
        "timings": timings,
    }
    return entry, gaussians, meta


def add_previews(
    entry: dict[str, Any], g: Gaussians, meta: SceneMeta, job_dir: Path, stem: str, orbit_frames: int
) -> None:
    """Render the previews into ``entry``; a failed preview is noted, never fatal (but a full
    disk raises, as for any output)."""
    t0 = time.perf_counter()
    try:
        entry["outputs"].update(write_previews(g, meta, job_dir, stem, orbit_frames))
    except OSError:
        raise
    except Exception as exc:  # a preview is a convenience: never lose the image over it
        entry["outputs"]["preview_error"] = {"message": f"preview failed: {exc}"}
    entry["timings"]["previews"] = time.perf_counter() - t0


# Bytes per Gaussian of the fixed-size formats, and the most their header may add.
_RECORD_BYTES = {"ply": (56, 4096), "splat": (32, 0)}


def _check_size(fmt: str, size: int, count: int) -> None:
    """A written file must hold exactly ``count`` records (the formats that make this easy)."""
    if fmt not in _RECORD_BYTES:
        return
    per, header = _RECORD_BYTES[fmt]
    if not 0 <= size - per * count <= header:
        raise OutputInvalid(f"the .{fmt} written holds {size} bytes, not {count} Gaussians' worth")


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
    """Process every image of ``req``, emitting one ``ImageDone`` or ``ImageFailed`` each.

    Three threads besides this one's model calls: decode ahead (one image), write behind
    (one image), and previews (at most one running and one waiting), so memory stays bounded
    and the model waits for none of them. On an accelerator only this thread touches it.
    """
    job_dir = Path(req.job_dir)
    one_thread = accel.on_one_thread(model.device)
    prepare_ahead = None if one_thread else model.device
    tasks = videos.expand(req, emit) if any(t.kind == "video" for t in req.images) else req.images
    pending: list[Future[None]] = []
    cached = CacheReader(req.cache_dir, lambda message: emit(WorkerWarning(req.job_id, message)))
    with (
        ThreadPoolExecutor(1, "decode") as decoder,
        ThreadPoolExecutor(1, "write") as writer,
        ThreadPoolExecutor(1, "preview") as previewer,
    ):

        def ahead_of(i: int) -> Future[Decoded] | None:
            if i >= len(tasks):
                return None
            return decoder.submit(
                decode, tasks[i], job_dir, req, prepare_ahead, model.dtype, model.memory_format
            )

        ahead = ahead_of(0)
        behind: Future[Future[None] | None] | None = None
        for index, task in enumerate(tasks):
            assert ahead is not None
            decoded = ahead.result()
            ahead = ahead_of(index + 1)
            slot = Slot(req.job_id, task.rel, index)
            if decoded.error is not None or decoded.image is None:
                emit(slot.failed(decoded.sha256, decoded.error))
                continue
            reused = cached.fetch(decoded.cache_key, job_dir, task.stem)
            if reused is not None:
                # The colour entry comes from this decode: the cache stores what predates it.
                extra = {"colour": decoded.image.colour.as_entry(), "timings": decoded.timings}
                emit(slot.done(decoded.sha256, {**reused, **extra, "cache_key": decoded.cache_key}))
                continue
            emit(slot.started())
            t0 = time.perf_counter()
            try:
                ndc = infer(model, decoded.image, decoded.model_input)
                accel.synchronize(model.device)  # GPU time is inference, not post-processing
            except Exception as exc:  # the model refusing one image must not end the job
                emit(slot.failed(decoded.sha256, ModelError(f"The model failed on this image: {exc}")))
                continue
            decoded.model_input = None
            decoded.timings["inference"] = time.perf_counter() - t0
            if one_thread:
                try:
                    decoded.unprojected = to_gaussians(decoded, ndc)
                except Exception as exc:
                    emit(slot.failed(decoded.sha256, exc))
                    continue
                ndc = None  # the device's copy goes now; the writer has the CPU's
            if behind is not None:
                _keep(pending, behind.result())
            behind = writer.submit(_finish_image, decoded, ndc, job_dir, req, slot, emit, previewer)
        if behind is not None:
            _keep(pending, behind.result())
        for future in pending:
            future.result()
    accel.empty_cache(model.device)  # an idle worker should not sit on the job's peak
    emit(JobDone(req.job_id, accelerator_bytes=accel.allocated_bytes(model.device)))


def _keep(pending: list[Future[None]], future: Future[None] | None) -> None:
    """Track a preview in flight; wait for older ones so at most two are outstanding."""
    if future is not None:
        pending.append(future)
    while len(pending) > 2:
        pending.pop(0).result()


def _finish_image(
    decoded: Decoded,
    ndc: Any,
    job_dir: Path,
    req: JobRequest,
    slot: Slot,
    emit: Emit,
    previewer: ThreadPoolExecutor,
) -> Future[None] | None:
    """Write one image's outputs (write-behind thread); hand its previews on, if any."""
    try:
        entry, gaussians, meta = write_outputs(decoded, ndc, job_dir, req.formats, write_options(req))
    except OSError as exc:
        emit(slot.failed(decoded.sha256, write_error(exc)))
        return None
    except Exception as exc:
        emit(slot.failed(decoded.sha256, exc))
        return None
    entry["timings"] = {**decoded.timings, **entry["timings"]}
    if decoded.cache_key:
        entry.update(cached=False, cache_key=decoded.cache_key)
    if not req.previews:
        emit(slot.done(decoded.sha256, entry))
        return None
    return previewer.submit(_preview_image, decoded, entry, gaussians, meta, job_dir, req, slot, emit)


def _preview_image(
    decoded: Decoded,
    entry: dict[str, Any],
    gaussians: Gaussians,
    meta: SceneMeta,
    job_dir: Path,
    req: JobRequest,
    slot: Slot,
    emit: Emit,
) -> None:
    """Render one image's previews (preview thread), then report the image done."""
    try:
        add_previews(entry, gaussians, meta, job_dir, decoded.task.stem, req.orbit_frames)
    except OSError as exc:
        emit(slot.failed(decoded.sha256, write_error(exc)))
        return
    emit(slot.done(decoded.sha256, entry))
