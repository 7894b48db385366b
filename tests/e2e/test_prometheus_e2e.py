"""A real Prometheus scrapes a real daemon; every dashboard query and alert rule evaluates.

Skipped only when the ``prometheus`` binary is absent (Debian: ``apt-get install prometheus``).
Prometheus listens on a free loopback port and keeps its data under the test's tmp_path.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.intake import corpus
from tests.observers.test_dashboard import EXPECTED_ALERTS, load_dashboard, panel_queries
from tests.support.harness import Daemon, jobs, wait_for
from tests.support.prometheus import PROMETHEUS, Prometheus

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="the prometheus binary is not installed "
        "(Debian: apt-get install -y --no-install-recommends prometheus)",
    ),
]

# What Grafana would put in place of its variables; ${DS_PROMETHEUS} only picks the data source.
RATE_INTERVAL = "1m"
RANGE = "5m"
# Panels that must show data once a few jobs ran.
MUST_HAVE_DATA = ("Throughput", "Queue depth by state")


def photo_folder(root: Path, name: str, count: int) -> None:
    folder = root / "inbox" / name
    folder.mkdir(parents=True)
    for i in range(count):
        rgb = (np.random.default_rng(i).random((48, 64, 3)) * 255).astype(np.uint8)
        corpus.write_png(folder / f"p{i}.png", rgb)


def substitute(expr: str, instance: str) -> str:
    out = (
        expr.replace("${instance}", instance)
        .replace("$instance", instance)
        .replace("$__rate_interval", RATE_INTERVAL)
        .replace("$__range", RANGE)
        .replace("$host", ".*")  # the worker hosts' variable, all of them
    )
    assert "$" not in out, f"a Grafana variable the test does not know: {expr!r}"
    return out


def test_dashboard_and_alerts_evaluate_in_prometheus(root: Path, tmp_path: Path, daemons: list) -> None:
    started = time.monotonic()
    d = Daemon(root)
    daemons.append(d)
    prometheus: Prometheus | None = None
    code: int | None = None
    try:
        instance = f"127.0.0.1:{d.metrics_port()}"
        prometheus = Prometheus(tmp_path / "prometheus", root)
        prom = prometheus
        wait_for(prom.ready, 30, lambda: f"prometheus to be ready\n{prom.text()}", interval=0.2)

        # The dashboard's instance variable: label_values(sharpmld_build_info, instance).
        wait_for(
            lambda: prom.value('sharpmld_worker_ready{job="sharpmld"}') == 1,
            60,
            lambda: f"Prometheus to see the worker ready\n{d.text()[-2000:]}",
            interval=0.2,
        )
        labels = prom.get("/api/v1/label/instance/values", **{"match[]": "sharpmld_build_info"})
        assert labels["data"] == [instance]

        photo_folder(root, "two", 2)
        photo_folder(root, "one", 1)
        (root / "inbox" / "text").mkdir()
        (root / "inbox" / "text" / "a.txt").write_text("no photos here")
        wait_for(
            lambda: len(jobs(root, "done")) + len(jobs(root, "failed")) == 3,
            60,
            lambda: f"three jobs to finish\n{d.text()[-2000:]}",
        )
        wait_for(
            lambda: (
                prom.value(f'sharpmld_queue_jobs{{instance="{instance}", state="done"}}') == 2
                and prom.value(f'sum(sharpmld_jobs_failed_total{{instance="{instance}"}})') == 1
                and prom.value(f'sharpmld_images_processed_total{{instance="{instance}"}}') == 3
            ),
            20,
            "Prometheus to scrape the finished jobs",
            interval=0.2,
        )

        # Every panel query parses and evaluates; the key panels have data.
        queries = panel_queries(load_dashboard())
        assert queries
        failures = {}
        for title, ref, expr in queries:
            answer = prom.query(substitute(expr, instance))
            if answer.get("status") != "success":
                failures[f"{title}/{ref}"] = answer.get("error")
            elif title in MUST_HAVE_DATA and not answer["data"]["result"]:
                failures[f"{title}/{ref}"] = "no data"
        assert not failures, failures
        throughput = {ref: expr for title, ref, expr in queries if title == "Throughput"}
        assert (prom.value(substitute(throughput["A"], instance)) or 0) > 0, "images/min"

        # Every alert rule loads, evaluates without error, and its expression runs as a query.
        def evaluated() -> list[dict[str, Any]] | None:
            groups = prom.get("/api/v1/rules")["data"]["groups"]
            rules = [rule for group in groups if group["name"] == "sharpmld" for rule in group["rules"]]
            return rules if rules and all(r["health"] != "unknown" for r in rules) else None

        rules = wait_for(evaluated, 15, lambda: f"the sharpmld rules to be evaluated\n{prom.text()}")
        assert {r["name"]: r["labels"].get("severity") for r in rules} == EXPECTED_ALERTS
        unhealthy = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
        assert not unhealthy, unhealthy
        for rule in rules:
            answer = prom.query(rule["query"])
            assert answer["status"] == "success", (rule["name"], answer.get("error"))
        states = {r["name"]: r["state"] for r in rules}
        assert states["SharpmldDown"] == "inactive"
        assert states["SharpmldEngineNotReady"] == "inactive"
        assert states["SharpmldScanStalled"] == "inactive"
        assert time.monotonic() - started < 60
    finally:
        try:
            if prometheus is not None:
                prometheus.stop()
        finally:
            code = d.stop()
    assert code == 0, d.text()[-2000:]
