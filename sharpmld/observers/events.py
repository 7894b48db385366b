"""Job and engine events, and the observers that watch them.

Metrics and notifications are observers: the daemon announces what happened through typed
no-op hooks, and neither the queue nor the runner knows who listens. A failing observer is
logged and ignored; it can never stop a job or the daemon.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sharpmld.core.errors import SharpmldError
from sharpmld.protocol import (
    ImageDone,
    ImageFailed,
    JobRequest,
    WorkerLost,
    WorkerReady,
    WorkerRecycled,
    WorkerUnavailable,
)
from sharpmld.queue.record import Job

ImageEvent = ImageDone | ImageFailed
WorkerEvent = WorkerReady | WorkerUnavailable | WorkerLost | WorkerRecycled


@dataclass(frozen=True)
class DaemonFacts:
    """What an observer may know of the daemon itself, taken fresh at each announcement."""

    paused_reason: str  # "" while claiming; else low_disk | engine_unavailable | shutting_down
    worker_memory_bytes: int  # resident bytes of the worker's process tree
    watcher_restarts: int  # times the inbox watcher was restarted since the daemon started
    accelerator_bytes: int = 0  # MPS/CUDA allocator after the worker's last job (0: CPU)


class JobRun(Protocol):
    """What an observer may read of a job while it runs: the daemon's run, seen from below."""

    job: Job
    request: JobRequest | None
    images: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    error: SharpmldError | None
    started: float


class Observer:
    """Base class: every hook does nothing. Override the ones you need.

    An observer has the lifecycle of every long-running part (``start``, ``step``, ``stop``)
    plus the job-event hooks. All of them run on the daemon's loop, so none may block: work
    that waits (a webhook, a command) goes to a thread of the observer's own.
    """

    def start(self, facts: DaemonFacts) -> None:
        """The daemon is initialised."""

    def step(self, facts: DaemonFacts, now: float) -> None:
        """Once per loop iteration, for gauges that follow the daemon's state; never blocks."""

    def stop(self) -> None:
        """The daemon is shutting down: finish (within a bound) or abandon what is pending."""

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
        """The inbox was scanned; ``stuck`` counts, by reason, the entries held until someone
        fixes their permissions (they wait for a person, not for time); ``inbox_bytes`` is
        what the scan's trees hold."""

    def on_claimed(self, run: JobRun, *, settle_wait: float, queue_wait: float) -> None:
        """A job was claimed (or adopted) and is about to be prepared."""

    def on_dispatched(self, run: JobRun, *, validation: float) -> None:
        """A job was handed to the worker."""

    def on_image(self, run: JobRun, event: ImageEvent) -> None:
        """The worker finished one image, well (``ImageDone``) or not (``ImageFailed``)."""

    def on_finished(self, run: JobRun, outcome: str) -> None:
        """A job left working/: done, failed, retry or handed_back."""

    def on_worker(self, event: WorkerEvent) -> None:
        """The worker became ready or unavailable, was lost, or was recycled."""

    def on_broker(self, *, connected: bool, counts: dict[str, int]) -> None:
        """Cluster mode, once per step: the broker's connection and its last counts."""

    def on_photos_settled(self, *, redeliveries: int, conflicts: int) -> None:
        """Cluster mode: a job's photos were gathered; deliveries beyond the first, losers swept."""


class Observers:
    """Fans every hook out to a list of observers, isolating their failures."""

    def __init__(self, observers: list[Observer], log: Any) -> None:
        self.observers = observers
        self.log = log

    def _call(self, name: str, *args: Any, **kwargs: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, name)(*args, **kwargs)
            except Exception as exc:  # an observer must never take the daemon down
                self.log.warning(
                    "observer failed", observer=type(observer).__name__, hook=name, error=repr(exc)
                )

    def start(self, facts: DaemonFacts) -> None:
        self._call("start", facts)

    def step(self, facts: DaemonFacts, now: float) -> None:
        self._call("step", facts, now)

    def stop(self) -> None:
        self._call("stop")

    def on_scan(self, **kwargs: Any) -> None:
        self._call("on_scan", **kwargs)

    def on_claimed(self, run: JobRun, **kwargs: Any) -> None:
        self._call("on_claimed", run, **kwargs)

    def on_dispatched(self, run: JobRun, **kwargs: Any) -> None:
        self._call("on_dispatched", run, **kwargs)

    def on_image(self, run: JobRun, event: ImageEvent) -> None:
        self._call("on_image", run, event)

    def on_finished(self, run: JobRun, outcome: str) -> None:
        self._call("on_finished", run, outcome)

    def on_worker(self, event: WorkerEvent) -> None:
        self._call("on_worker", event)

    def on_broker(self, **kwargs: Any) -> None:
        self._call("on_broker", **kwargs)

    def on_photos_settled(self, **kwargs: Any) -> None:
        self._call("on_photos_settled", **kwargs)
