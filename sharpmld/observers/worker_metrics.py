"""A cluster worker's own ``/metrics``: its model's figures and its photos, labelled by host.

Every series carries ``host`` (the name the worker's status file shows), put on at scrape
time by :class:`HostLabelled`, so the dashboard can select hosts however Prometheus finds the
worker (a static target or the discovery file the worker writes). The model series have the
daemon's names (``model_metrics``); the photo and broker series are the worker's view of the
cluster, the intake's ``sharpmld_broker_*`` being the broker's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from sharpmld.observers import endpoint
from sharpmld.observers.model_metrics import ModelMetrics
from sharpmld.observers.process import register_process_collector

PHOTO_OUTCOMES = ("done", "failed", "lost", "handed_back", "commit_lost")


class HostLabelled(Collector):
    """Every sample of ``inner`` with ``host`` added: a constant label on a whole registry."""

    def __init__(self, inner: CollectorRegistry, host: str) -> None:
        self.inner = inner
        self.host = host

    def collect(self) -> Iterable[Metric]:
        for family in self.inner.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                labelled.add_sample(
                    sample.name,
                    {**sample.labels, "host": self.host},
                    sample.value,
                    sample.timestamp,
                    sample.exemplar,
                )
            yield labelled


class WorkerMetrics:
    """The series of one ``sharpmld worker --cluster`` process."""

    def __init__(self, host: str, *, proc_available: bool | None = None) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # as the daemon: see Metrics
        inner = CollectorRegistry(auto_describe=True)
        self.model = ModelMetrics(inner)
        self.photos = Counter(
            "sharpmld_cluster_worker_photos_total",
            "Photos this worker let go of, by outcome: committed done or failed, lost with its "
            "model worker, handed back, or a commit lost to another attempt",
            ["outcome"],
            registry=inner,
        )
        self.connected = Gauge(
            "sharpmld_cluster_worker_broker_connected",
            "1 while this worker is connected to the broker",
            registry=inner,
        )
        self.holding = Gauge(
            "sharpmld_cluster_worker_holding", "1 while this worker holds a photo", registry=inner
        )
        for outcome in PHOTO_OUTCOMES:
            self.photos.labels(outcome=outcome)
        register_process_collector(inner, proc_available=proc_available)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(HostLabelled(inner, host))
        self.port: int | None = None
        self._server: Any = None

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint (port 0: a free one); returns the port."""
        self._server = endpoint.start(
            self.registry,
            host,
            port,
            what="the worker's metrics",
            advice="pass --metrics-port with a free port, or 0 to pick one",
        )
        self.port = int(self._server.server_port)
        return self.port

    def stop(self) -> None:
        endpoint.stop(self._server)
        self._server = None
