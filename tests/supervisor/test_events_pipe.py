"""The supervisor's reading of the events pipe: typed events out, and no line lost in silence."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sharpmld.core.config import Config
from sharpmld.protocol import ImageStarted, JobDone, WorkerLost, encode
from sharpmld.supervisor import supervisor as sv


@pytest.fixture
def busy(tmp_path: Path) -> Iterator[tuple[sv.Supervisor, int]]:
    """A supervisor in the middle of a job, reading a pipe the test writes the worker's side of."""
    supervisor = sv.Supervisor(Config(root=tmp_path, path=None))
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    supervisor._events_fd = read_fd
    supervisor.state = sv.BUSY
    yield supervisor, write_fd
    os.close(write_fd)
    if supervisor._events_fd is not None:
        os.close(supervisor._events_fd)


def test_events_come_out_typed(busy: tuple[sv.Supervisor, int]) -> None:
    supervisor, pipe = busy
    os.write(pipe, encode(ImageStarted("j", "a.jpg", 0)) + encode(JobDone("j")))
    assert supervisor.read_events(now=1.0) == [ImageStarted("j", "a.jpg", 0), JobDone("j")]
    assert supervisor.state == sv.READY


def test_a_malformed_event_loses_the_worker_and_says_why(busy: tuple[sv.Supervisor, int]) -> None:
    supervisor, pipe = busy
    os.write(pipe, b'{"ev": "job_done"}\n')
    (event,) = supervisor.read_events(now=1.0)
    assert isinstance(event, WorkerLost) and event.busy and event.reason == "crash"
    assert "missing field 'job_id'" in event.detail


def test_events_before_a_malformed_line_still_count(busy: tuple[sv.Supervisor, int]) -> None:
    supervisor, pipe = busy
    os.write(pipe, encode(ImageStarted("j", "a.jpg", 0)) + b"not json\n" + encode(JobDone("j")))
    started, lost = supervisor.read_events(now=1.0)
    assert started == ImageStarted("j", "a.jpg", 0)
    assert isinstance(lost, WorkerLost) and lost.busy and "malformed event" in lost.detail


def test_an_oversized_line_loses_the_worker(busy: tuple[sv.Supervisor, int]) -> None:
    supervisor, pipe = busy
    events: list[object] = []
    for _ in range(20):  # 20 x 64 KiB without a newline: past the 1 MiB a line may have
        os.write(pipe, b"x" * (1 << 16))
        events += supervisor.read_events(now=1.0)
        if events:  # the supervisor closed its end
            break
    assert len(events) == 1 and isinstance(events[0], WorkerLost)
    assert events[0].detail == "the worker sent an oversized message"


def test_the_accelerator_memory_the_worker_reports_reaches_the_gauge(
    busy: tuple[sv.Supervisor, int], tmp_path: Path
) -> None:
    """The worker reports what MPS holds after each job; the daemon's gauge follows it."""
    from prometheus_client import generate_latest

    from sharpmld.observers.events import DaemonFacts
    from sharpmld.observers.metrics import Metrics
    from sharpmld.queue.layout import Layout

    supervisor, pipe = busy
    os.write(pipe, encode(JobDone("j", accelerator_bytes=3_000_000_000)))
    supervisor.read_events(now=1.0)
    assert supervisor.info.accelerator_bytes == 3_000_000_000
    metrics = Metrics(Layout(tmp_path))
    facts = DaemonFacts("", 0, 0, accelerator_bytes=supervisor.info.accelerator_bytes)
    metrics.step(facts, 1.0)
    scrape = generate_latest(metrics.registry).decode()  # the text a scrape gets
    assert "sharpmld_worker_mps_allocated_bytes 3e+09" in scrape, scrape
