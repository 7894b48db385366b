"""A cluster worker's own /metrics: served on a port of its own, found by Prometheus, by host."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sharpmld.cluster.commit import Attempt
from sharpmld.clusterworker.status import status_path
from sharpmld.daemon.targets import TARGETS_DIR, sweep_targets, worker_target_name
from sharpmld.observers.worker_metrics import WorkerMetrics
from tests.clusterworker.fakes import Rig, make_rig

HOST = socket.gethostname()
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted({"host": HOST, **labels}.items()))))


def warm(tmp_path: Path) -> Rig:
    rig = make_rig(tmp_path, metrics=True)
    rig.model.become_ready()
    rig.step()
    return rig


def test_every_series_carries_the_host_label() -> None:
    metrics = WorkerMetrics("studio-mini-3")
    families = list(metrics.registry.collect())
    samples = [s for f in families for s in f.samples]
    assert {f.name for f in families} >= {
        "sharpmld_cluster_worker_photos",
        "sharpmld_images_processed",
        "sharpmld_worker_ready",
        "process_resident_memory_bytes",
    }
    assert samples and all(s.labels.get("host") == "studio-mini-3" for s in samples)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_workers_scrape(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    try:
        port = rig.worker.status.metrics_port
        assert port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read()
        checked = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        rig.worker.stop()


def test_the_worker_serves_its_photos_and_model_by_host(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    try:
        port = rig.worker.status.metrics_port
        assert port, "no metrics port in the status"
        written = json.loads(status_path(rig.root / ".sharpmld", "host1").read_text())
        assert written["metrics_port"] == port
        job = rig.job(photos=3)
        rig.hand_out(rig.task(job))
        assert value(scrape(port), "sharpmld_cluster_worker_holding") == 1
        rig.model.finish_images()
        rig.step()
        rig.step()
        rig.hand_out(rig.task(job, "img1.png"))
        other = Attempt(job, "img1.png", "host2.77.2")  # another worker commits it first
        other.open()
        assert other.commit()
        rig.model.finish_images()
        rig.step()
        rig.step()
        rig.hand_out(rig.task(job, "img2.png"))
        rig.model.die()
        rig.step()

        samples = scrape(port)
        assert value(samples, "sharpmld_cluster_worker_photos_total", outcome="done") == 1
        assert value(samples, "sharpmld_cluster_worker_photos_total", outcome="commit_lost") == 1
        assert value(samples, "sharpmld_cluster_worker_photos_total", outcome="lost") == 1
        assert value(samples, "sharpmld_cluster_worker_photos_total", outcome="failed") == 0
        assert value(samples, "sharpmld_images_processed_total") == 2  # the loser ran too
        assert value(samples, "sharpmld_worker_restarts_total", reason="crash") == 1
        assert value(samples, "sharpmld_worker_ready") == 0  # its model worker just died
        assert value(samples, "sharpmld_cluster_worker_broker_connected") == 1
        assert value(samples, "sharpmld_cluster_worker_holding") == 0  # the nak was answered
    finally:
        rig.worker.stop()


def test_prometheus_finds_the_worker_until_it_stops(tmp_path: Path) -> None:
    rig = warm(tmp_path)
    state = rig.root / ".sharpmld"
    target = state / TARGETS_DIR / worker_target_name("host1", rig.worker.pid)
    port = rig.worker.status.metrics_port
    (entry,) = json.loads(target.read_text())
    assert entry["targets"] == [f"127.0.0.1:{port}"]
    # No host label here: the series carry their own, and a second one would be renamed.
    assert entry["labels"] == {"role": "worker", "host_id": "host1", "root": str(rig.root)}
    assert sweep_targets(state) == [], "a live worker's discovery file was swept"
    rig.worker.stop()
    assert not target.exists()
    with pytest.raises(OSError):
        scrape(port)


def test_a_killed_workers_discovery_file_goes_with_its_status_file(tmp_path: Path) -> None:
    state = tmp_path / ".sharpmld"
    (state / TARGETS_DIR).mkdir(parents=True)
    (state / "workers").mkdir()
    alive, gone = worker_target_name("host1", 11), worker_target_name("host1", 12)
    (state / "workers" / "host1.11.json").write_text("{}")
    for name in (alive, gone):
        (state / TARGETS_DIR / name).write_text("[]")
    assert sweep_targets(state) == [gone]
    assert (state / TARGETS_DIR / alive).exists()


def test_two_workers_on_one_host_get_ports_of_their_own(tmp_path: Path) -> None:
    first = make_rig(tmp_path / "a", metrics=True)
    second = make_rig(tmp_path / "b", metrics=True)
    try:
        ports = {first.worker.status.metrics_port, second.worker.status.metrics_port}
        assert len(ports) == 2 and None not in ports
    finally:
        first.worker.stop()
        second.worker.stop()
