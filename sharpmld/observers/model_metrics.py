"""The model's figures: what a supervised model worker reports, in whichever process holds it.

The single-host daemon and each cluster worker (``sharpmld worker --cluster``) both run a
model worker through a supervisor, so both export these series with the same names, help
texts and buckets: one panel or rule reads either. Defined here once; ``metrics.Metrics``
(the daemon) and ``worker_metrics.WorkerMetrics`` (a cluster worker) each hold one.
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sharpmld import __version__
from sharpmld.core.errors import IMAGE_ERRORS, WORKER_ERRORS
from sharpmld.observers.events import ImageEvent, WorkerEvent
from sharpmld.protocol import WORKER_STAGES, ImageDone, WorkerLost, WorkerReady, WorkerRecycled

# 0.75-3 s resolve GPU inference (about 1 s a photo), 45-90 s CPU inference (about 60 s).
STAGE_BUCKETS = (
    0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 45, 60, 90, 120, 300, 600, 1800, 3600,
)  # fmt: skip
RESTART_REASONS = ("crash", "timeout", "memory", "recycle")


class ModelMetrics:
    """Images made or refused, stage times, and the model worker's health and memory."""

    def __init__(self, r: CollectorRegistry, *, stages: tuple[str, ...] = ()) -> None:
        """``stages``: stage names besides the worker's own to create at 0 (the daemon's
        settle and queue waits)."""
        self.images_processed = Counter(
            "sharpmld_images_processed_total", "Images turned into splats", registry=r
        )
        self.images_rejected = Counter(
            "sharpmld_images_rejected_total", "Images refused, by error code", ["code"], registry=r
        )
        self.gaussians = Counter("sharpmld_gaussians_total", "Gaussians produced", registry=r)
        self.stage = Histogram(
            "sharpmld_stage_duration_seconds", "Time per stage", ["stage"], buckets=STAGE_BUCKETS, registry=r
        )
        self.worker_ready = Gauge("sharpmld_worker_ready", "1 when the model is loaded and ready", registry=r)
        self.worker_device = Gauge(
            "sharpmld_worker_device_info", "The worker's device", ["device"], registry=r
        )
        self.model_load = Gauge(
            "sharpmld_worker_model_load_seconds", "Time the worker took to load the model", registry=r
        )
        self.worker_rss = Gauge(
            "sharpmld_worker_resident_memory_bytes", "Resident memory of the worker process tree", registry=r
        )
        self.worker_mps = Gauge(
            "sharpmld_worker_mps_allocated_bytes",
            "Memory the MPS (or CUDA) allocator holds for tensors after the last job",
            registry=r,
        )
        self.worker_restarts = Counter(
            "sharpmld_worker_restarts_total", "Worker restarts by reason", ["reason"], registry=r
        )
        self.build_info = Gauge(
            "sharpmld_build_info", "Version information", ["version", "python", "torch", "device"], registry=r
        )
        # Every code exists from the start at 0, so the first failure of a kind shows in rate().
        for code in (*IMAGE_ERRORS, *WORKER_ERRORS):
            self.images_rejected.labels(code=code)
        for reason in RESTART_REASONS:
            self.worker_restarts.labels(reason=reason)
        for s in (*stages, *WORKER_STAGES):
            self.stage.labels(stage=s)
        self._build(torch="", device="")

    def _build(self, *, torch: str, device: str) -> None:
        self.build_info.clear()
        self.build_info.labels(
            version=__version__, python=platform.python_version(), torch=torch, device=device
        ).set(1)

    def on_image(self, event: ImageEvent) -> None:
        if isinstance(event, ImageDone):
            self.images_processed.inc()
            self.gaussians.inc(event.gaussians)
            for stage, seconds in event.timings.items():  # every stage, even one not known yet
                self.stage.labels(stage=stage).observe(seconds)
        else:
            self.images_rejected.labels(code=event.code).inc()

    def on_worker(self, event: WorkerEvent) -> None:
        if isinstance(event, WorkerReady):
            self.worker_ready.set(1)
            self.worker_device.clear()
            self.worker_device.labels(device=event.device).set(1)
            self.model_load.set(event.load_seconds)
            self._build(torch=event.torch, device=event.device)
        elif isinstance(event, WorkerRecycled):
            self.worker_ready.set(0)
            self.worker_restarts.labels(reason="recycle").inc()
        else:
            self.worker_ready.set(0)
            self.worker_mps.set(0)
            if isinstance(event, WorkerLost):
                self.worker_restarts.labels(reason=event.reason).inc()

    def on_memory(self, resident_bytes: int, accelerator_bytes: int) -> None:
        self.worker_rss.set(resident_bytes)
        self.worker_mps.set(accelerator_bytes)
