"""Target 4: the worker pipeline keeps the model busy (decode ahead, write behind).

The real ``run_job`` runs a job of photos through a model whose forward pass takes T seconds
(bench/sleepy_model.py) loaded by the real ``load_model`` from a checkpoint. The baseline does
the same work one stage after another (decode, infer, write) with the pipeline's own stage
functions, and is the sum of those stage times.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import Figure, median
from bench.photos import write_photos
from bench.sleepy_model import SIDE_ENV, SLEEP_ENV, write_checkpoint
from sharpmld.protocol import Event, ImageDone, ImageFailed, ImageTask, JobRequest
from sharpmld.worker.model import LoadedModel, load_model
from sharpmld.worker.pipeline import decode, infer, run_job, write_outputs

TARGET_FACTOR = 1.05
FORMATS = ("ply", "splat")


def _request(job_dir: Path, photos: list[Path], *, extras: bool = False) -> JobRequest:
    """A job writing .ply and .splat; ``extras`` keeps the request's other defaults (previews)."""
    if job_dir.exists():
        shutil.rmtree(job_dir)
    job_dir.mkdir(parents=True)
    tasks = tuple(ImageTask(p.name, str(p), p.stem) for p in photos)
    req = JobRequest(job_id=job_dir.name, job_dir=str(job_dir), images=tasks, formats=FORMATS)
    if not extras and "previews" in {f.name for f in dataclasses.fields(JobRequest)}:
        req = dataclasses.replace(req, previews=False)
    return req


def pipelined(
    model: LoadedModel, job_dir: Path, photos: list[Path], *, extras: bool = False
) -> tuple[float, list[ImageDone]]:
    """Wall time of ``run_job`` over ``photos``; checks every image produced both files."""
    req = _request(job_dir, photos, extras=extras)
    events: list[Event] = []
    start = time.perf_counter()
    run_job(req, model, events.append)
    wall = time.perf_counter() - start
    done = [e for e in events if isinstance(e, ImageDone)]
    failed = [e for e in events if isinstance(e, ImageFailed)]
    if failed or len(done) != len(photos):
        raise RuntimeError(f"pipeline run failed: {failed[:2]}")
    for p in photos:
        for suffix in (".ply", ".splat"):
            if not (job_dir / f"{p.stem}{suffix}").stat().st_size:
                raise RuntimeError(f"{p.stem}{suffix} is empty")
    return wall, done


def serial(model: LoadedModel, job_dir: Path, photos: list[Path]) -> dict[str, list[float]]:
    """The same stages one after another, timed each."""
    req = _request(job_dir, photos)
    stages: dict[str, list[float]] = {"decode": [], "infer": [], "write": []}
    for task in req.images:
        t0 = time.perf_counter()
        decoded = decode(task, job_dir, req)
        t1 = time.perf_counter()
        assert decoded.image is not None, decoded.error
        ndc = infer(model, decoded.image)
        t2 = time.perf_counter()
        write_outputs(decoded, ndc, job_dir, FORMATS)
        t3 = time.perf_counter()
        stages["decode"].append(t1 - t0)
        stages["infer"].append(t2 - t1)
        stages["write"].append(t3 - t2)
    return stages


def run(quick: bool) -> list[Figure]:
    count, sleep, side, repeat = (2, 0.2, 128, 1) if quick else (10, 2.0, 768, 3)
    width, height = (384, 288) if quick else (1536, 1152)
    old = {k: os.environ.get(k) for k in (SLEEP_ENV, SIDE_ENV)}
    os.environ[SLEEP_ENV], os.environ[SIDE_ENV] = str(sleep), str(side)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
            root = Path(tmp)
            photos = write_photos(root / "input", count, width, height)
            checkpoint = root / "sleepy.pt"
            write_checkpoint(checkpoint)
            model = load_model("bench.sleepy_model:create", checkpoint, "cpu")
            if model.method != "meta+mmap+assign":
                raise RuntimeError(f"the model loaded the {model.method} way")
            warm, _ = pipelined(model, root / "warmup", photos[:1])
            walls = []
            for i in range(repeat):
                wall, done = pipelined(model, root / f"job{i}", photos)
                walls.append(wall)
            stages = serial(model, root / "serial", photos)
            default_wall, default_done = pipelined(model, root / "defaults", photos, extras=True)
            worker_stages: dict[str, list[float]] = {}
            for event in done:
                for key, seconds in event.timings.items():
                    worker_stages.setdefault(key, []).append(seconds)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    value = median(walls)
    ideal = count * sleep
    base = sum(sum(v) for v in stages.values())
    limit = TARGET_FACTOR * ideal
    per_stage = {k: round(median(v), 3) for k, v in stages.items()}
    default_stages: dict[str, list[float]] = {}
    for event in default_done:
        for key, seconds in event.timings.items():
            default_stages.setdefault(key, []).append(seconds)
    default_medians = {k: round(median(v), 3) for k, v in default_stages.items()}
    extra_stages = sorted(set(default_medians) - set(worker_stages))
    return [
        Figure(
            name="pipeline_job",
            group="pipeline",
            title=(
                f"job of {count} photos {width}×{height}, forward T = {sleep:g} s, "
                f"{2 * side * side:,} Gaussians each"
            ),
            value=value,
            unit="s",
            baseline=base,
            baseline_label="the same stages run serially (sum of stage times)",
            ratio=base / value,
            target=(
                f"≤ {TARGET_FACTOR:g} × {count} T = {limit:.2f} s (+ one-off load {model.load_seconds:.2f} s)"
            ),
            passed=value <= limit,
            runs=walls,
            notes=(
                f"overhead over {count} T: {value - ideal:+.2f} s ({value / ideal:.3f}× {count} T); "
                f"serial stage medians: decode {per_stage['decode']} s, infer {per_stage['infer']} s, "
                f"write {per_stage['write']} s"
            ),
            extra={
                "images": count,
                "sleep_seconds": sleep,
                "ideal_seconds": ideal,
                "load_seconds": model.load_seconds,
                "warmup_job_seconds": warm,
                "serial_stage_medians": per_stage,
                "serial_stage_runs": stages,
                "pipelined_stage_medians": {k: round(median(v), 3) for k, v in worker_stages.items()},
            },
        ),
        Figure(
            name="pipeline_job_defaults",
            group="pipeline",
            title=f"the same job with the request's other defaults on ({', '.join(extra_stages) or 'none'})",
            value=default_wall,
            unit="s",
            baseline=value,
            baseline_label=".ply + .splat only (the figure above)",
            ratio=default_wall / value,
            ratio_label="× the .ply+.splat job",
            target="(informational: the issue's target covers .ply and .splat)",
            runs=[default_wall],
            notes=(
                f"one run; pipelined stage medians {default_medians}; over {count} T: "
                f"{default_wall / ideal:.2f}×"
            ),
            extra={"stage_medians": default_medians},
        ),
    ]
