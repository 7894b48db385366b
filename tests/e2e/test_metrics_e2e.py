"""Scraping the running daemon: counters and histograms move with the jobs it runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sharpmld.core import memcap
from sharpmld.core.units import MB
from tests.intake import corpus
from tests.support import harness
from tests.support.harness import Daemon, jobs, scrape, wait_for
from tests.support.harness import metric as value

pytestmark = pytest.mark.timeout(120)


def photo_folder(root: Path, name: str, count: int, broken: int = 0) -> None:
    folder = root / "inbox" / name
    folder.mkdir(parents=True)
    for i in range(count):
        rgb = (np.random.default_rng([len(name), i]).random((48, 64, 3)) * 255).astype(np.uint8)
        corpus.write_png(folder / f"p{i}.png", rgb)
    for i in range(broken):
        corpus.write_truncated_jpeg(folder / f"bad{i}.jpg")


def test_metrics_follow_the_jobs(root: Path, daemons: list) -> None:
    d = Daemon(root)
    daemons.append(d)
    port = d.metrics_port()
    wait_for(
        lambda: value(scrape(port), "sharpmld_worker_ready") == 1,
        60,
        "the worker to be ready",
    )
    before = scrape(port)
    assert value(before, "sharpmld_jobs_claimed_total") == 0
    assert not [name for name, _ in before if name.endswith("_created")]
    assert value(before, "sharpmld_min_free_bytes") == 2000 * MB  # the default min_free_mb
    assert value(before, "sharpmld_worker_memory_limit_bytes") == memcap.resolve("auto").bytes
    assert value(before, "process_resident_memory_bytes") > 10_000_000
    assert (
        value(
            before,
            "sharpmld_build_info",
            version="0.1.0",
            python=__import__("platform").python_version(),
            torch=__import__("torch").__version__,
            device="cpu",
        )
        == 1
    )

    photo_folder(root, "two", 2)
    photo_folder(root, "mixed", 1, broken=1)
    (root / "inbox" / "text").mkdir()
    (root / "inbox" / "text" / "a.txt").write_text("no")
    wait_for(
        lambda: len(jobs(root, "done")) + len(jobs(root, "failed")) == 3,
        60,
        lambda: f"three jobs\n{d.text()[-2000:]}",
    )
    after = wait_for(
        lambda: (
            (s := scrape(port))
            and value(s, "sharpmld_queue_jobs", state="done") == 2
            and value(s, "sharpmld_queue_jobs", state="failed") == 1
            and s
        ),
        10,
        "the queue gauges to catch up",
    )

    assert value(after, "sharpmld_jobs_claimed_total") == 3
    assert value(after, "sharpmld_jobs_succeeded_total") == 2
    assert value(after, "sharpmld_jobs_failed_total", code="no_valid_images") == 1
    assert value(after, "sharpmld_images_processed_total") == 3
    assert value(after, "sharpmld_images_rejected_total", code="decode_failed") == 1
    assert value(after, "sharpmld_images_rejected_total", code="unsupported_type") == 1
    assert value(after, "sharpmld_gaussians_total") == 3 * 32 * 32
    assert value(after, "sharpmld_queue_jobs", state="failed") == 1
    assert value(after, "sharpmld_queue_jobs", state="working") == 0
    assert value(after, "sharpmld_stage_duration_seconds_count", stage="inference") == 3
    assert value(after, "sharpmld_stage_duration_seconds_count", stage="job") == 3
    assert value(after, "sharpmld_stage_duration_seconds_count", stage="settle_wait") == 3
    assert value(after, "sharpmld_job_images_count") == 2  # the text-only job never reached the worker
    assert value(after, "sharpmld_worker_resident_memory_bytes") > 10_000_000
    assert value(after, "sharpmld_last_scan_timestamp_seconds") > 0
    assert value(after, "sharpmld_intake_paused", reason="engine_unavailable") == 0
    assert value(after, "sharpmld_disk_free_bytes") > 0
    assert d.stop() == 0


def test_port_in_use_is_a_clear_start_error(root: Path, checkpoint: Path, daemons: list) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        harness.write_config(root, checkpoint, metrics={"port": busy.getsockname()[1]})
        d = Daemon(root)
        daemons.append(d)
        assert d.wait(timeout=30) == 3
        text = d.text()
        assert "cannot serve metrics" in text and "Traceback" not in text
