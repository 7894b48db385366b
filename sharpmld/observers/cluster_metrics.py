"""The intake's cluster figures, added to the daemon's registry only when the cluster mode is on.

A single-host daemon's scrape stays exactly as it was: these families exist only in a daemon
with ``[cluster] url`` set. Counts come from the broker (its consumers' pending and
ack-pending photos, polled every few seconds); redeliveries and commit conflicts are counted
when a job's photos are gathered, from the attempts themselves: a winning attempt's name ends
with its delivery number, and every other attempt folder left is a loser swept.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from sharpmld.observers.events import DaemonFacts, Observer
from sharpmld.observers.metrics import Metrics

BROKER_PAUSE = "broker_unavailable"


class ClusterMetrics(Observer):
    """sharpmld_broker_* and sharpmld_commit_conflicts_total, kept from the intake's events."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self._paused = metrics.paused
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
        self._paused.labels(reason=BROKER_PAUSE).set(0)

    def on_broker(self, *, connected: bool, counts: dict[str, int]) -> None:
        self.connected.set(1 if connected else 0)
        if connected and counts:
            self.pending.set(counts.get("pending", 0))
            self.ack_pending.set(counts.get("ack_pending", 0))

    def on_photos_settled(self, *, redeliveries: int, conflicts: int) -> None:
        self.redelivered.inc(redeliveries)
        self.conflicts.inc(conflicts)

    def step(self, facts: DaemonFacts, now: float) -> None:
        self._paused.labels(reason=BROKER_PAUSE).set(1 if facts.paused_reason == BROKER_PAUSE else 0)
