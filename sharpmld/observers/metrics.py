"""The daemon's Prometheus metrics, served by the daemon process.

The model worker reports its figures to the daemon in its events; there is no multiprocess
mode. (A cluster worker serves its own, smaller set: ``worker_metrics``.)
Metrics live in their own registry, bind to loopback by default, and nothing happens at
import time. Folder sizes are computed on a background thread, never during a scrape.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from sharpmld.core.errors import JOB_ERRORS
from sharpmld.intake.scanner import NOT_WRITABLE, UNREADABLE
from sharpmld.observers import endpoint
from sharpmld.observers.events import DaemonFacts, ImageEvent, Observer, WorkerEvent
from sharpmld.observers.model_metrics import ModelMetrics
from sharpmld.observers.process import register_process_collector
from sharpmld.queue.jobid import is_job_id
from sharpmld.queue.layout import STATES as LAYOUT_STATES
from sharpmld.queue.layout import Layout

IMAGE_BUCKETS = (1, 2, 5, 10, 20, 50, 100)
BYTE_BUCKETS = tuple(float(1 << n) for n in range(16, 32, 2))
STUCK_REASONS = (UNREADABLE, NOT_WRITABLE)
PAUSE_REASONS = ("low_disk", "engine_unavailable", "shutting_down")
# The queue's states, with "settling" (in the inbox, not ready yet) after the inbox.
STATES = (LAYOUT_STATES[0], "settling", *LAYOUT_STATES[1:])


class Metrics(Observer):
    """Every sharpmld metric, kept current from the daemon's events."""

    def __init__(
        self,
        layout: Layout,
        *,
        disk_interval: float = 30.0,
        memory_limit_bytes: int = 0,
        min_free_bytes: int = 0,
        proc_available: bool | None = None,
    ) -> None:
        """``memory_limit_bytes`` (the resolved ``[worker] max_memory_mb``) and ``min_free_bytes``
        (``[intake] min_free_mb``) are exported so the alerts compare against this machine's
        settings, not a figure fixed in alerts.yml; 0 means off. ``proc_available`` picks the
        ``process_*`` collector as a platform without ``/proc`` would (see observers.process).
        """
        # Every _created series doubles the counters and histograms (18 % of a scrape) and no
        # panel or rule reads them. The switch is process-wide in prometheus_client; the daemon
        # process only ever holds this registry.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.layout = layout
        self.disk_interval = disk_interval
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.port: int | None = None
        self._server: Any = None
        self._stop = threading.Event()
        self._job_counts = _JobCounts()
        self._finished_bytes = _FinishedBytes()

        self.jobs_claimed = Counter(
            "sharpmld_jobs_claimed_total", "Jobs claimed from the inbox or adopted", registry=r
        )
        self.jobs_succeeded = Counter("sharpmld_jobs_succeeded_total", "Jobs that ended in done/", registry=r)
        self.jobs_retried = Counter(
            "sharpmld_jobs_retried_total", "Attempts retried after the worker was lost", registry=r
        )
        self.jobs_failed = Counter(
            "sharpmld_jobs_failed_total", "Jobs that ended in failed/, by error code", ["code"], registry=r
        )
        self.jobs_handed_back = Counter(
            "sharpmld_jobs_handed_back_total", "Jobs returned to the inbox", registry=r
        )
        self.queue_jobs = Gauge("sharpmld_queue_jobs", "Jobs per state", ["state"], registry=r)
        self.oldest_waiting = Gauge(
            "sharpmld_queue_oldest_waiting_seconds",
            "Age of the oldest entry waiting in the inbox",
            registry=r,
        )
        self.inbox_stuck = Gauge(
            "sharpmld_inbox_stuck_entries",
            "Inbox entries the daemon's user cannot read or move, held until their permissions change",
            ["reason"],
            registry=r,
        )
        self.paused = Gauge(
            "sharpmld_intake_paused", "1 while claiming is paused, by reason", ["reason"], registry=r
        )
        self.model = ModelMetrics(r, stages=("settle_wait", "queue_wait", "validation", "job"))
        self.stage = self.model.stage  # the daemon's own stages share the model's histogram
        self.job_images = Histogram(
            "sharpmld_job_images", "Images per job", buckets=IMAGE_BUCKETS, registry=r
        )
        self.job_bytes = Histogram(
            "sharpmld_job_input_bytes", "Input bytes per job", buckets=BYTE_BUCKETS, registry=r
        )

        self.worker_memory_limit = Gauge(
            "sharpmld_worker_memory_limit_bytes",
            "The worker memory cap ([worker] max_memory_mb resolved); 0 when off",
            registry=r,
        )
        self.worker_memory_limit.set(memory_limit_bytes)

        self.disk_free = Gauge("sharpmld_disk_free_bytes", "Free bytes on the root's volume", registry=r)
        self.min_free = Gauge(
            "sharpmld_min_free_bytes",
            "Free bytes under which the daemon stops claiming ([intake] min_free_mb)",
            registry=r,
        )
        self.min_free.set(min_free_bytes)
        self.state_bytes = Gauge(
            "sharpmld_state_bytes", "Bytes under each state folder", ["state"], registry=r
        )
        self.last_scan = Gauge(
            "sharpmld_last_scan_timestamp_seconds", "Unix time of the last inbox scan", registry=r
        )
        self.scan_seconds = Gauge(
            "sharpmld_last_scan_duration_seconds", "How long the last inbox scan took", registry=r
        )
        self.watcher_restarts = Counter(
            "sharpmld_watcher_restarts_total", "Filesystem watcher restarts", registry=r
        )
        # The daemon's own CPU, memory and start time, from /proc or (macOS) psutil.
        register_process_collector(r, proc_available=proc_available)
        # Every code exists from the start at 0, so the first failure of a kind shows in rate().
        for code in JOB_ERRORS:
            self.jobs_failed.labels(code=code)
        for reason in PAUSE_REASONS:
            self.paused.labels(reason=reason).set(0)
        for reason in STUCK_REASONS:
            self.inbox_stuck.labels(reason=reason).set(0)
        for state in STATES:
            self.queue_jobs.labels(state=state).set(0)

    # -- serving -----------------------------------------------------------------------------

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint; a port in use is a clear start-up error."""
        self._server = endpoint.start(
            self.registry,
            host,
            port,
            what="metrics",
            advice="set [metrics] port to a free port, or enabled = false",
        )
        self.port = int(self._server.server_port)
        threading.Thread(target=self._disk_loop, name="metrics-disk", daemon=True).start()
        return self.port

    def stop(self) -> None:
        self._stop.set()
        endpoint.stop(self._server)

    def _disk_loop(self) -> None:
        while not self._stop.is_set():
            self.refresh_disk()
            self._stop.wait(self.disk_interval)

    def refresh_disk(self) -> None:
        """Free space and bytes per state folder (a full walk: kept off the scrape path)."""
        with contextlib.suppress(OSError):
            self.disk_free.set(self.layout.free_bytes())
        # The inbox's bytes come with each scan (``on_scan``): walking 10,000 waiting folders
        # here too cost most of an idle intake's CPU.
        self.state_bytes.labels(state="working").set(_tree_bytes(self.layout.state("working")))
        for state in ("done", "failed"):
            self.state_bytes.labels(state=state).set(self._finished_bytes.total(self.layout.state(state)))

    # -- events ------------------------------------------------------------------------------

    def on_scan(
        self,
        *,
        duration: float,
        waiting: int,
        settling: int,
        oldest_age: float,
        stuck: Mapping[str, int] | None = None,
        inbox_bytes: int | None = None,
    ) -> None:
        self.last_scan.set(time.time())
        if inbox_bytes is not None:  # the scan has walked the inbox already
            self.state_bytes.labels(state="inbox").set(inbox_bytes)
        self.scan_seconds.set(duration)
        self.queue_jobs.labels(state="inbox").set(waiting)
        self.queue_jobs.labels(state="settling").set(settling)
        self.oldest_waiting.set(oldest_age)
        for reason in STUCK_REASONS:
            self.inbox_stuck.labels(reason=reason).set((stuck or {}).get(reason, 0))
        self._count_jobs()

    def _count_jobs(self) -> None:
        """Recount working/, done/ and failed/: on every scan, and whenever a job moves between
        them, so the gauges never lag the counters by a scan interval (a job that fails at
        validation is claimed and failed in one step, after that step's scan)."""
        for state in ("working", "done", "failed"):
            self.queue_jobs.labels(state=state).set(self._job_counts.count(self.layout.state(state)))

    def on_claimed(self, run: Any, *, settle_wait: float, queue_wait: float) -> None:
        self.jobs_claimed.inc()
        self._count_jobs()
        if settle_wait >= 0:
            self.stage.labels(stage="settle_wait").observe(settle_wait)
        if queue_wait >= 0:
            self.stage.labels(stage="queue_wait").observe(queue_wait)

    def on_dispatched(self, run: Any, *, validation: float) -> None:
        self.stage.labels(stage="validation").observe(validation)
        request = run.request
        if request is not None:
            self.job_images.observe(len(request.images))
            self.job_bytes.observe(sum(_size(t.src) for t in request.images))

    def on_image(self, run: Any, event: ImageEvent) -> None:
        self.model.on_image(event)

    def on_finished(self, run: Any, outcome: str) -> None:
        if outcome == "done":
            self.jobs_succeeded.inc()
        elif outcome == "failed":
            self.jobs_failed.labels(code=run.error.code if run.error else "internal_error").inc()
        elif outcome == "retry":
            self.jobs_retried.inc()
        elif outcome == "handed_back":
            self.jobs_handed_back.inc()
        if outcome in ("done", "failed", "handed_back"):
            self._count_jobs()  # the job has left working/ by now
        if outcome in ("done", "failed"):
            self.stage.labels(stage="job").observe(time.time() - run.started)
            for rejected in run.rejected:
                if rejected["source"] not in {t.rel for t in (run.request.images if run.request else [])}:
                    self.model.images_rejected.labels(code=rejected["code"]).inc()

    def on_worker(self, event: WorkerEvent) -> None:
        self.model.on_worker(event)

    def step(self, facts: DaemonFacts, now: float) -> None:
        for r in PAUSE_REASONS:
            self.paused.labels(reason=r).set(1 if r == facts.paused_reason else 0)
        self.model.on_memory(facts.worker_memory_bytes, facts.accelerator_bytes)
        restarts = facts.watcher_restarts
        if restarts > self._watcher_seen:
            self.watcher_restarts.inc(restarts - self._watcher_seen)
            self._watcher_seen = restarts

    _watcher_seen = 0


class _JobCounts:
    """Job folders per state folder, recounted only when that folder's mtime changes.

    With 10,000 jobs in done/, listing it on every scan is most of an idle daemon's work. A
    count taken less than ``RACY_NS`` after the folder last changed is not trusted: with coarse
    timestamps (one clock tick, several ms, on kernels before multigrain timestamps) a second
    rename in the same tick leaves the mtime unchanged, and the count would stay stale.
    """

    RACY_NS = 1_000_000_000

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[int, int]] = {}

    def count(self, folder: Path) -> int:
        try:
            mtime = os.stat(folder).st_mtime_ns
        except FileNotFoundError:
            return 0
        cached = self._seen.get(folder)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        counted_at = time.time_ns()
        count = sum(1 for name in os.listdir(folder) if is_job_id(name))
        if counted_at - mtime >= self.RACY_NS:
            self._seen[folder] = (mtime, count)
        else:
            self._seen.pop(folder, None)
        return count


class _FinishedBytes:
    """Bytes under done/ or failed/: a finished job never changes, so each is walked once
    (again only if its folder's mtime moves); a removed job simply drops out."""

    def __init__(self) -> None:
        self._sizes: dict[str, tuple[int, int]] = {}

    def total(self, folder: Path) -> int:
        total = 0
        alive: set[str] = set()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime_ns
            except FileNotFoundError:
                continue
            alive.add(entry.path)
            cached = self._sizes.get(entry.path)
            if cached is None or cached[0] != mtime:
                size = _tree_bytes(Path(entry.path)) if entry.is_dir(follow_symlinks=False) else 0
                cached = self._sizes[entry.path] = (mtime, size)
            total += cached[1]
        prefix = str(folder) + os.sep
        for gone in [p for p in self._sizes if p.startswith(prefix) and p not in alive]:
            del self._sizes[gone]
        return total


def _size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _tree_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
