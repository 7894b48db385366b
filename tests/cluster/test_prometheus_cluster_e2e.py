"""A real Prometheus finds the intake and two workers on one host by file-based discovery.

The intake daemon and two ``sharpmld worker --cluster`` processes share one root and one
host, each serving /metrics on a port of its own (issue: a second process on a host used to
fail at start on the taken port). Prometheus follows ``.sharpmld/targets/*.json``, as the
README says; the dashboard's per-host panels then have data for the host, and its
``instance`` variable offers the intake only. Skipped without ``prometheus`` or ``nats-server``.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.cluster.conftest import NatsServer
from tests.cluster.standin import Worker, start_workers
from tests.cluster.test_intake_e2e import drop
from tests.observers.test_dashboard import WORKER_PANELS, load_dashboard, panel_queries
from tests.support import harness
from tests.support.harness import Daemon, jobs, wait_for
from tests.support.prometheus import PROMETHEUS, Prometheus

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(PROMETHEUS is None, reason="the prometheus binary is not installed"),
]
HOST = socket.gethostname()
PHOTOS = 4


def test_prometheus_scrapes_the_intake_and_each_worker_by_host(
    tmp_path: Path, nats_server: NatsServer, checkpoint: Path, workers: list[Worker], daemons: list[Daemon]
) -> None:
    root = tmp_path / "root"
    harness.write_config(
        root, checkpoint, cluster={"url": nats_server.url, "ack_wait_seconds": 3, "max_deliver": 5}
    )
    intake = Daemon(root)
    daemons.append(intake)
    instance = f"127.0.0.1:{intake.metrics_port()}"
    pair = start_workers(root, nats_server.url, workers, 2)
    ports = {w.status()["metrics_port"] for w in pair}  # type: ignore[index]
    assert len(ports) == 2 and int(instance.rsplit(":", 1)[1]) not in ports

    prom = Prometheus(tmp_path / "prometheus", root)
    try:
        wait_for(prom.ready, 30, lambda: f"prometheus to be ready\n{prom.text()}", interval=0.2)
        drop(root, "kitchen", images=PHOTOS)
        wait_for(lambda: jobs(root, "done"), 120, lambda: f"the job done\n{intake.text()[-3000:]}")
        done = f'sum(sharpmld_cluster_worker_photos_total{{outcome="done", host="{HOST}"}})'
        wait_for(
            lambda: (
                prom.value(f'count(sharpmld_cluster_worker_holding{{host="{HOST}"}})') == 2
                and prom.value(done) == PHOTOS
                and prom.value(f'sharpmld_cluster_workers_connected{{instance="{instance}"}}') == 2
            ),
            60,
            lambda: f"Prometheus to see both workers and {PHOTOS} photos\n{prom.text()}",
            interval=0.2,
        )
        # The variables: the daemons to choose among, the worker hosts.
        daemons_found = prom.get("/api/v1/label/instance/values", **{"match[]": "sharpmld_queue_jobs"})
        assert daemons_found["data"] == [instance]
        hosts = prom.get("/api/v1/label/host/values", **{"match[]": "sharpmld_cluster_worker_holding"})
        assert hosts["data"] == [HOST]

        per_host = [(t, r, e) for t, r, e in panel_queries(load_dashboard()) if t in WORKER_PANELS]
        assert {t for t, _, _ in per_host} == WORKER_PANELS
        for title, ref, expr in per_host:
            query = expr.replace("$host", HOST).replace("$__rate_interval", "1m")
            answer = wait_for(
                lambda q=query: (a := prom.query(q)).get("status") == "success" and a["data"]["result"] and a,
                30,
                lambda q=query, where=f"{title}/{ref}": f"{where} to have data: {prom.query(q)}",
                interval=0.5,
            )
            assert {r["metric"].get("host") for r in answer["data"]["result"]} == {HOST}, title
    finally:
        prom.stop()
    for w in pair:
        assert w.stop() == 0
    assert intake.stop() == 0
    assert list((root / ".sharpmld" / "targets").glob("worker-*")) == [], "a stopped worker's target"
