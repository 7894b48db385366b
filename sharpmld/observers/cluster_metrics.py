"""The intake's cluster figures, added to the daemon's registry only when the cluster mode is on.

A single-host daemon's scrape stays exactly as it was: these families exist only in a daemon
with ``[cluster] url`` set. Counts come from the broker (its consumers' pending and
ack-pending photos, polled every few seconds); redeliveries and commit conflicts are counted
when a job's photos are gathered, from the attempts themselves: a winning attempt's name ends
with its delivery number, and every other attempt folder left is a loser swept.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge

from sharpmld.cluster.workers import REFRESH_SECONDS, connected_by_host, read_workers
from sharpmld.observers.events import DaemonFacts, Observer
from sharpmld.observers.metrics import Metrics

BROKER_PAUSE = "broker_unavailable"


class ClusterMetrics(Observer):
    """sharpmld_broker_* and sharpmld_commit_conflicts_total, kept from the intake's events."""

    def __init__(self, metrics: Metrics, wall: Callable[[], float] = time.time) -> None:
        r = metrics.registry
        self._paused = metrics.paused
        self._state_dir = metrics.layout.state_dir
        self._wall = wall
        self._next_workers = 0.0
        self.connected = Gauge("sharpmld_broker_connected", "1 while the broker answers", registry=r)
        self.pending = Gauge(
            "sharpmld_broker_pending", "Photos waiting on the broker for a worker", registry=r
        )
        self.ack_pending = Gauge(
            "sharpmld_broker_ack_pending", "Photos held by workers, not yet acked", registry=r
        )
        self.redelivered = Counter(
            "sharpmld_broker_redelivered_total",
            "Deliveries of a photo beyond its first, counted when its job is gathered",
            registry=r,
        )
        self.conflicts = Counter(
            "sharpmld_commit_conflicts_total",
            "Attempts that lost the commit and were swept when their job was gathered",
            registry=r,
        )
        self.oldest = Gauge(
            "sharpmld_broker_oldest_pending_seconds",
            "Age of the oldest photo on the broker not yet done (waiting or held), 0 when none",
            registry=r,
        )
        self.workers = Gauge(
            "sharpmld_cluster_workers",
            "Cluster workers whose status file was written in the last 30 s, by host",
            ["host"],
            registry=r,
        )
        self.workers_connected = Gauge(
            "sharpmld_cluster_workers_connected",
            "Cluster workers whose status file was written in the last 30 s, all hosts",
            registry=r,
        )
        self._paused.labels(reason=BROKER_PAUSE).set(0)

    def on_broker(self, *, connected: bool, counts: dict[str, int]) -> None:
        self.connected.set(1 if connected else 0)
        if connected and counts:
            self.pending.set(counts.get("pending", 0))
            self.ack_pending.set(counts.get("ack_pending", 0))
            self.oldest.set(counts.get("oldest_age_seconds", 0))

    def on_photos_settled(self, *, redeliveries: int, conflicts: int) -> None:
        self.redelivered.inc(redeliveries)
        self.conflicts.inc(conflicts)

    def step(self, facts: DaemonFacts, now: float) -> None:
        self._paused.labels(reason=BROKER_PAUSE).set(1 if facts.paused_reason == BROKER_PAUSE else 0)
        if now >= self._next_workers:  # a folder listing: as often as the workers rewrite
            self._next_workers = now + REFRESH_SECONDS
            self._count_workers()

    def _count_workers(self) -> None:
        """One child per host with a live worker; a host whose workers are gone drops out."""
        by_host = connected_by_host(read_workers(self._state_dir), self._wall())
        self.workers.clear()
        for host, count in by_host.items():
            self.workers.labels(host=host).set(count)
        self.workers_connected.set(sum(by_host.values()))
