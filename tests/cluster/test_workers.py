"""Which cluster workers are connected, from their status files on the shared root."""

from __future__ import annotations

import json
from pathlib import Path

from sharpmld.cluster.workers import STALE_SECONDS, WORKERS_DIR, connected_by_host, read_workers
from sharpmld.observers.cluster_metrics import ClusterMetrics
from sharpmld.observers.events import DaemonFacts
from sharpmld.observers.metrics import Metrics
from sharpmld.queue.layout import Layout

NOW = 1_800_000_000.0


def _worker(state_dir: Path, host: str, pid: int, updated: float) -> None:
    folder = state_dir / WORKERS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    data = {"host": host, "host_id": f"id-{host}", "pid": pid, "updated": updated}
    (folder / f"id-{host}.{pid}.json").write_text(json.dumps(data))


def test_workers_are_counted_by_host_and_a_stale_file_is_a_worker_gone(tmp_path: Path) -> None:
    _worker(tmp_path, "mini-2", 20, NOW - 1)
    _worker(tmp_path, "mini-1", 11, NOW - 5)
    _worker(tmp_path, "mini-1", 12, NOW - STALE_SECONDS - 1)  # killed outright: its file stays
    _worker(tmp_path, "cuda-box", 7, NOW)
    (tmp_path / WORKERS_DIR / "torn.json").write_text("{not json")
    (tmp_path / WORKERS_DIR / ".x.json.tmp").write_text("{}")
    workers = read_workers(tmp_path)
    assert [(w["host"], w["pid"]) for w in workers] == [
        ("cuda-box", 7),
        ("mini-1", 11),
        ("mini-1", 12),
        ("mini-2", 20),
    ]
    assert connected_by_host(workers, NOW) == {"cuda-box": 1, "mini-1": 1, "mini-2": 1}
    assert read_workers(tmp_path / "nowhere") == []


def test_the_intake_exports_workers_by_host_and_the_oldest_pending_photo(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    metrics = Metrics(layout)
    clock = [NOW]
    cluster = ClusterMetrics(metrics, wall=lambda: clock[0])
    _worker(layout.state_dir, "mini-1", 11, NOW)
    _worker(layout.state_dir, "mini-1", 12, NOW)
    _worker(layout.state_dir, "mini-2", 20, NOW)
    facts = DaemonFacts(paused_reason="", worker_memory_bytes=0, watcher_restarts=0)
    cluster.step(facts, 0.0)
    cluster.on_broker(connected=True, counts={"pending": 3, "ack_pending": 2, "oldest_age_seconds": 42})

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert value("sharpmld_cluster_workers", host="mini-1") == 2
    assert value("sharpmld_cluster_workers", host="mini-2") == 1
    assert value("sharpmld_cluster_workers_connected") == 3
    assert value("sharpmld_broker_oldest_pending_seconds") == 42
    # Every worker of mini-2 stops writing: after the next refresh the host drops out.
    clock[0] = NOW + STALE_SECONDS + 1
    _worker(layout.state_dir, "mini-1", 11, clock[0])
    _worker(layout.state_dir, "mini-1", 12, clock[0])
    cluster.step(facts, 5.0)  # inside the refresh interval: not read again yet
    assert value("sharpmld_cluster_workers", host="mini-2") == 1
    cluster.step(facts, 11.0)
    assert value("sharpmld_cluster_workers", host="mini-2") is None
    assert value("sharpmld_cluster_workers_connected") == 2
