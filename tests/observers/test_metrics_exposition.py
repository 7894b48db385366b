"""What a scrape holds: ``process_*`` without /proc, the limits the alerts compare against,
the stage buckets, and no ``_created`` series."""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import psutil
import tomli_w
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sharpmld.core import config
from sharpmld.core.units import MB
from sharpmld.daemon.loop import Daemon
from sharpmld.observers.metrics import Metrics
from sharpmld.observers.process import proc_readable, register_process_collector
from sharpmld.queue.layout import Layout
from tests.daemon.fakes import FakeWatcher, FakeWorker

PROCESS_NAMES = {
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
}


def _samples(metrics: Metrics) -> dict[str, float]:
    """Unlabelled samples of a real exposition, parsed back as Prometheus would read them."""
    text = generate_latest(metrics.registry).decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def test_process_metrics_come_from_psutil_where_there_is_no_proc(tmp_path: Path) -> None:
    burn = time.process_time() + 0.05
    while time.process_time() < burn:  # some CPU time of our own to read back
        pass
    samples = _samples(Metrics(Layout(tmp_path), proc_available=False))
    assert set(samples) >= PROCESS_NAMES, PROCESS_NAMES - set(samples)

    me = psutil.Process()
    rss = me.memory_info().rss
    assert 0.5 * rss < samples["process_resident_memory_bytes"] < 2 * rss
    assert samples["process_virtual_memory_bytes"] >= samples["process_resident_memory_bytes"]
    assert samples["process_start_time_seconds"] == me.create_time()
    assert psutil.boot_time() <= samples["process_start_time_seconds"] <= time.time()
    assert 0.05 <= samples["process_cpu_seconds_total"] <= time.process_time() + 1
    assert 3 <= samples["process_open_fds"] <= samples["process_max_fds"]
    assert abs(samples["process_open_fds"] - me.num_fds()) <= 5
    assert samples["process_max_fds"] == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_process_metric_names_match_the_proc_collector(tmp_path: Path) -> None:
    """A rule or panel written against a Linux daemon reads a Mac daemon the same way."""
    names = [
        {n for n in _samples(Metrics(Layout(tmp_path), proc_available=proc)) if n.startswith("process_")}
        for proc in (True, False)
    ]
    assert names[0] == names[1] == PROCESS_NAMES


def test_no_created_series_in_a_scrape(tmp_path: Path) -> None:
    metrics = Metrics(Layout(tmp_path))
    metrics.jobs_claimed.inc()
    metrics.stage.labels(stage="inference").observe(1.2)
    text = generate_latest(metrics.registry).decode()
    assert "sharpmld_jobs_claimed_total 1.0" in text
    assert "_created" not in text


def test_stage_buckets_resolve_gpu_and_cpu_inference(tmp_path: Path) -> None:
    metrics = Metrics(Layout(tmp_path))
    text = generate_latest(metrics.registry).decode()
    bounds = {
        float(sample.labels["le"])
        for family in text_string_to_metric_families(text)
        if family.name == "sharpmld_stage_duration_seconds"
        for sample in family.samples
        if sample.name.endswith("_bucket") and sample.labels["stage"] == "inference"
    }
    before = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
    assert before | {0.75, 1.5, 3, 45, 90} | {float("inf")} == bounds


def test_the_limits_the_alerts_compare_against_are_exported(tmp_path: Path) -> None:
    samples = _samples(Metrics(Layout(tmp_path), memory_limit_bytes=5 << 30, min_free_bytes=2000 * MB))
    assert samples["sharpmld_worker_memory_limit_bytes"] == 5 << 30
    assert samples["sharpmld_min_free_bytes"] == 2000 * MB


def test_the_daemon_exports_its_configured_cap_and_min_free(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    data = {"worker": {"max_memory_mb": 4000}, "intake": {"min_free_mb": 1500}, "metrics": {"enabled": True}}
    (root / config.CONFIG_NAME).write_text(tomli_w.dumps(data))
    daemon = Daemon(config.load(root=root, environ={}), supervisor=FakeWorker(), watcher=FakeWatcher())
    assert daemon.metrics is not None
    samples = _samples(daemon.metrics)
    assert samples["sharpmld_worker_memory_limit_bytes"] == 4000 * MB
    assert samples["sharpmld_min_free_bytes"] == 1500 * MB


def test_the_collector_is_chosen_by_whether_proc_is_readable(tmp_path: Path) -> None:
    assert not proc_readable(str(tmp_path))  # a folder with no stat and no self, as on macOS
    assert register_process_collector(CollectorRegistry(), proc_available=False) == "psutil"
    if sys.platform == "linux":
        assert proc_readable()
        assert register_process_collector(CollectorRegistry()) == "proc"
