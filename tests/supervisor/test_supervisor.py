"""The supervisor's state machine, stepped in-process with a fake clock and a fake worker.

No real subprocess: the spawn function hands back a ``FakeChild`` whose events the test writes
into the real events pipe, and signals go to a recorder that decides whether the child dies.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sharpmld.core.config import Config
from sharpmld.protocol import EVENT_FD_ENV, ImageTask, JobRequest, SupervisorEvent
from sharpmld.supervisor import supervisor as sv
from sharpmld.supervisor.memory import TreeMemory
from sharpmld.supervisor.spawn import WorkerCommand

PROMPT = 0.05  # real seconds a step may take: it must never wait for the worker


class FakeChild:
    """A worker process as the supervisor sees it; ``dies_on`` says which signals kill it."""

    def __init__(self, pid: int, command: WorkerCommand, dies_on: set[int]) -> None:
        self.pid = pid
        self.command = command
        self.dies_on = dies_on
        self.code: int | None = None
        self.sent: list[dict[str, Any]] = []
        self.stdin_open = True
        self.events_fd: int | None = os.dup(int(command.env[EVENT_FD_ENV]))

    def poll(self) -> int | None:
        return self.code

    def send(self, data: bytes) -> bool:
        if self.code is not None or not self.stdin_open:
            return False
        self.sent.extend(json.loads(line) for line in data.splitlines())  # the wire, as sent
        return True

    def close(self) -> None:
        self.stdin_open = False

    def emit(self, **event: Any) -> None:
        """Put one event on the pipe as a worker would: a line of JSON."""
        assert self.events_fd is not None
        os.write(self.events_fd, json.dumps(event).encode() + b"\n")

    def exit(self, code: int) -> None:
        """Die: the events pipe closes and the exit status becomes reapable."""
        self.code = code
        if self.events_fd is not None:
            os.close(self.events_fd)
            self.events_fd = None


def as_dict(event: SupervisorEvent) -> dict[str, Any]:
    """A typed event as a dict with its kind under ``ev``, for short assertions."""
    tag = getattr(event, "tag", None)
    kind = tag[1] if tag else re.sub(r"(?<!^)(?=[A-Z])", "_", type(event).__name__).lower()
    return {"ev": kind, **dataclasses.asdict(event)}


class World:
    """A supervisor wired to fakes, and the fake clock that drives it."""

    def __init__(
        self,
        tmp_path: Path,
        dies_on: set[int] | None = None,
        *,
        platform: str = "linux",
        ram: int = 16 << 30,
        **worker: Any,
    ) -> None:
        self.now = 1000.0
        self.dies_on = {signal.SIGTERM, signal.SIGKILL} if dies_on is None else dies_on
        self.children: list[FakeChild] = []
        self.signals: list[tuple[float, int, int]] = []
        self.rss = 0
        self.footprint: int | None = 0
        self.group_gone = False
        cfg = Config(tmp_path, None, {"worker": {"max_memory_mb": 100, **worker}})
        self.sup = sv.Supervisor(
            cfg,
            spawn_worker=self._spawn,
            signal_group=self._signal,
            memory=TreeMemory(
                platform,
                footprint=lambda _pid: self.footprint,
                rss=lambda _pid: self.rss,
                children=lambda _pid: [],
            ),
            ram=lambda: ram,
            clock=lambda: self.now,
            sleep=self._sleep,
        )

    def _spawn(self, command: WorkerCommand) -> FakeChild:
        child = FakeChild(5000 + len(self.children), command, self.dies_on)
        self.children.append(child)
        return child

    def _signal(self, pid: int, sig: int) -> bool:
        child = next(c for c in self.children if c.pid == pid)
        if child.code is not None or self.group_gone:
            return False  # ESRCH: the group is gone
        self.signals.append((self.now, pid, sig))
        if sig in child.dies_on:
            child.exit(-sig)
        return True

    def _sleep(self, seconds: float) -> None:
        self.now += seconds

    @property
    def child(self) -> FakeChild:
        return self.children[-1]

    def step(self, advance: float = 0.0) -> list[dict[str, Any]]:
        """Advance the clock, step once, and check that the step returned promptly."""
        self.now += advance
        started = time.perf_counter()
        events = self.sup.step(self.now)
        took = time.perf_counter() - started
        assert took < PROMPT, f"step took {took:.3f} s"
        return [as_dict(e) for e in events]

    def ready(self, device: str = "cpu") -> FakeChild:
        self.sup.start(self.now)
        self.child.emit(ev="ready", device=device, torch="2.x", load_seconds=0.5, pid=self.child.pid)
        assert [e["ev"] for e in self.step()] == ["ready"]
        return self.child

    def dispatch(self, job_id: str = "j1", images: int = 1) -> None:
        tasks = [ImageTask(f"p{i}.png", f"/in/p{i}.png", f"p{i}") for i in range(images)]
        self.sup.send_job(JobRequest(job_id, "/job", tuple(tasks)), self.now)

    def close(self) -> None:
        self.sup.stop(grace=0.1)
        for c in self.children:
            if c.events_fd is not None:
                os.close(c.events_fd)
                c.events_fd = None


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def lost(events: list[dict[str, Any]]) -> dict[str, Any]:
    (event,) = [e for e in events if e["ev"] == "worker_lost"]
    return event


def test_a_started_worker_becomes_ready_and_says_what_it_runs_on(world: World) -> None:
    world.sup.start(world.now)
    assert world.sup.state == sv.STARTING
    assert world.child.command.argv[-3:-1] == ["-m", "sharpmld.worker.main"]
    assert world.step() == []
    assert world.sup.state == sv.STARTING
    world.child.emit(ev="ready", device="cpu", torch="2.x", load_seconds=0.5, pid=world.child.pid)
    assert [e["ev"] for e in world.step()] == ["ready"]
    assert world.sup.state == sv.READY
    assert (world.sup.info.device, world.sup.info.load_seconds) == ("cpu", 0.5)


def test_a_dispatched_job_runs_and_its_events_pass_through(world: World) -> None:
    child = world.ready()
    world.dispatch("j1", images=2)
    assert world.sup.state == sv.BUSY
    assert [(m["op"], m["job_id"]) for m in child.sent] == [("job", "j1")]
    for rel in ("p0.png", "p1.png"):
        child.emit(ev="image_started", job_id="j1", rel=rel, index=0)
        child.emit(ev="image_done", job_id="j1", rel=rel, index=0, sha256="")
    child.emit(ev="job_done", job_id="j1")
    events = world.step(1.0)
    assert [e["ev"] for e in events] == ["image_started", "image_done"] * 2 + ["job_done"]
    assert world.sup.state == sv.READY


def test_a_busy_worker_cannot_take_a_second_job(world: World) -> None:
    world.ready()
    world.dispatch("j1")
    with pytest.raises(RuntimeError, match="busy"):
        world.dispatch("j2")


def test_worker_death_mid_job_is_reported_with_its_exit_status_then_restarted(world: World) -> None:
    child = world.ready()
    world.dispatch()
    child.emit(ev="image_started", job_id="j1", rel="p0.png", index=0)
    child.exit(-signal.SIGKILL)
    event = lost(world.step(0.5))
    assert event["reason"] == "crash" and event["busy"] is True
    assert "SIGKILL" in event["detail"]
    assert world.sup.state == sv.BACKOFF and world.sup.fileno() is None
    assert world.step(0.5) == [] and len(world.children) == 1  # backing off: 1 s after a crash
    world.step(0.6)
    assert world.sup.state == sv.STARTING and len(world.children) == 2


def test_timeout_sends_term_then_kill_after_the_grace_while_steps_return_at_once(tmp_path: Path) -> None:
    w = World(tmp_path, dies_on=set(), image_timeout_seconds=5.0)  # ignores TERM, KILL "pending"
    try:
        child = w.ready()
        w.dispatch()
        assert w.step(4.0) == []
        t0 = w.now + 1.5
        assert w.step(1.5) == []  # past the image limit: TERM, and nothing reported yet
        assert w.sup.state == sv.STOPPING
        assert w.signals == [(t0, child.pid, signal.SIGTERM)]
        child.emit(ev="job_done", job_id="j1")  # too late: it was given up on
        for _ in range(5):
            assert w.step(0.5) == []  # t0 + 2.5: still within the grace; the loop goes on
        assert len(w.signals) == 1
        assert w.step(0.5) == []  # t0 + 3.0: KILL
        assert w.signals[-1] == (t0 + sv.KILL_GRACE, child.pid, signal.SIGKILL)
        assert w.sup.state == sv.STOPPING
        child.exit(-signal.SIGKILL)  # the kernel gets round to it
        event = lost(w.step(0.1))
        assert event["reason"] == "timeout" and event["busy"] is True
        assert "over 5 s" in event["detail"] and "SIGKILL" in event["exit"]
        assert w.sup.state == sv.BACKOFF
    finally:
        w.close()


def test_memory_over_the_limit_kills_the_worker_and_says_so(world: World) -> None:
    child = world.ready()
    world.dispatch()
    world.rss = 300 << 20
    event = lost(world.step(1.0))  # TERM ends this worker at once: reaped on the same step
    assert world.signals[0] == (world.now, child.pid, signal.SIGTERM)
    assert event["reason"] == "memory" and "300 MB" in event["detail"] and "100 MB" in event["detail"]


GIB = 1 << 30


def mac_with_8_gb(tmp_path: Path) -> World:
    """A fake 8 GB Mac with the default cap ("auto"): 0.6 × 8 GB = 4915.2 MB."""
    return World(tmp_path, platform="darwin", ram=8 * GIB, max_memory_mb="auto")


def test_on_an_8_gb_mac_the_default_cap_is_six_tenths_of_its_ram_and_reaches_the_worker(
    tmp_path: Path,
) -> None:
    w = mac_with_8_gb(tmp_path)
    try:
        assert w.sup.memory_cap.mb == pytest.approx(4915.2)
        w.sup.start(w.now)
        settings = json.loads(w.child.command.argv[-1])
        assert settings["max_memory_mb"] == pytest.approx(4915.2)  # a number: the worker's MPS cap
    finally:
        w.close()


def test_on_a_mac_the_worker_is_killed_over_the_cap_by_its_footprint_though_its_rss_is_small(
    tmp_path: Path,
) -> None:
    w = mac_with_8_gb(tmp_path)
    try:
        child = w.ready()
        w.dispatch()
        w.rss, w.footprint = 1 * GIB, 4 * GIB  # MPS tensors count in the footprint, not in RSS
        assert w.step(1.0) == [] and w.sup.state == sv.BUSY
        w.footprint = 5 * GIB
        event = lost(w.step(1.0))
        assert w.signals[0] == (w.now, child.pid, signal.SIGTERM)
        assert event["reason"] == "memory"
        assert "physical footprint" in event["detail"] and "5120 MB" in event["detail"]
        assert "4915.2 MB limit" in event["detail"]
    finally:
        w.close()


def test_on_a_mac_a_large_rss_under_a_small_footprint_is_left_alone(tmp_path: Path) -> None:
    w = mac_with_8_gb(tmp_path)
    try:
        w.ready()
        w.dispatch()
        w.rss, w.footprint = 6 * GIB, 1 * GIB  # shared, clean pages: nothing the Mac must swap
        for _ in range(3):
            assert w.step(1.0) == []
        assert w.sup.state == sv.BUSY and w.signals == []
        assert w.sup.memory_bytes(max_age=0) == 1 * GIB
    finally:
        w.close()


def test_on_a_mac_a_footprint_that_cannot_be_read_falls_back_to_rss(tmp_path: Path) -> None:
    w = mac_with_8_gb(tmp_path)
    try:
        w.ready()
        w.dispatch()
        w.rss, w.footprint = 5 * GIB, None
        assert lost(w.step(1.0))["reason"] == "memory"
    finally:
        w.close()


def test_a_memory_cap_of_0_never_kills(tmp_path: Path) -> None:
    w = World(tmp_path, platform="darwin", ram=8 * GIB, max_memory_mb=0)
    try:
        w.ready()
        w.dispatch()
        w.rss = w.footprint = 64 * GIB
        assert w.step(1.0) == [] and w.sup.state == sv.BUSY
    finally:
        w.close()


def test_recycle_after_the_image_quota_asks_then_restarts_without_blocking(tmp_path: Path) -> None:
    w = World(tmp_path, max_images_per_worker=2)
    try:
        child = w.ready()
        w.dispatch(images=2)
        for rel in ("p0.png", "p1.png"):
            child.emit(ev="image_done", job_id="j1", rel=rel, index=0, sha256="")
        child.emit(ev="job_done", job_id="j1")
        events = w.step(1.0)
        assert [e["ev"] for e in events][-2:] == ["job_done", "worker_recycled"]
        assert events[-1]["images"] == 2
        assert w.sup.state == sv.STOPPING
        assert child.sent[-1] == {"op": "stop"} and w.signals == []
        child.exit(0)
        assert w.step(0.1) == []  # reaped, and a fresh worker started on the same step
        assert w.sup.state == sv.STARTING and len(w.children) == 2
        assert child.stdin_open is False
    finally:
        w.close()


def test_an_idle_worker_that_ignores_stop_is_termed_after_the_grace(tmp_path: Path) -> None:
    w = World(tmp_path, max_images_per_worker=1)
    try:
        child = w.ready()
        w.dispatch()
        child.emit(ev="image_done", job_id="j1", rel="p0.png", index=0, sha256="")
        child.emit(ev="job_done", job_id="j1")
        w.step(0.1)
        t0 = w.now
        w.step(sv.RECYCLE_GRACE - 0.1)
        assert w.signals == []
        w.step(0.2)
        assert w.signals[0] == (t0 + sv.RECYCLE_GRACE + 0.1, child.pid, signal.SIGTERM)
        assert w.sup.state == sv.STARTING  # TERM killed it; reaped and replaced on the same step
    finally:
        w.close()


def test_stop_with_a_job_in_flight_terms_kills_and_is_bounded(tmp_path: Path) -> None:
    w = World(tmp_path, dies_on={signal.SIGKILL})
    try:
        child = w.ready()
        w.dispatch()
        t0 = w.now
        w.sup.stop(grace=2.0)
        assert [s for _, _, s in w.signals][:2] == [signal.SIGTERM, signal.SIGKILL]
        assert w.signals[0][0] == t0 and t0 + 2.0 <= w.signals[1][0] < t0 + 2.1
        assert w.sup.state == sv.STOPPED and child.stdin_open is False
        assert w.sup.step(w.now) == []  # stopping on purpose reports no lost worker
    finally:
        w.close()


def test_stop_gives_up_on_an_unkillable_worker(tmp_path: Path) -> None:
    w = World(tmp_path, dies_on=set())
    try:
        w.ready()
        w.dispatch()
        t0 = w.now
        w.sup.stop(grace=1.0)
        assert w.sup.state == sv.STOPPED
        assert w.now - t0 <= 1.0 + sv.REAP_SECONDS + 0.1
    finally:
        w.close()


def test_a_group_already_gone_counts_as_reaped(tmp_path: Path) -> None:
    w = World(tmp_path, dies_on=set(), image_timeout_seconds=1.0)
    try:
        child = w.ready()
        w.dispatch()
        w.group_gone = True  # e.g. it exited and something else reaped it
        assert child.poll() is None
        event = lost(w.step(2.0))
        assert event["reason"] == "timeout" and event["exit"] == "the worker vanished"
    finally:
        w.close()


def test_five_failed_starts_make_the_engine_unavailable(world: World) -> None:
    for n in range(sv.START_FAILURES_BEFORE_UNAVAILABLE):
        world.step(120.0)  # past any backoff
        assert world.sup.state == sv.STARTING
        world.child.exit(1)
        events = world.step(0.1)
        if n < sv.START_FAILURES_BEFORE_UNAVAILABLE - 1:
            assert lost(events)["busy"] is False
    assert world.sup.state == sv.UNAVAILABLE
    assert [(e["ev"], e["message"]) for e in events] == [("unavailable", world.sup.unavailable_reason)]
    assert "5 times" in world.sup.unavailable_reason and "status 1" in world.sup.unavailable_reason


def test_an_unavailable_engine_is_retried_after_the_configured_wait(tmp_path: Path) -> None:
    w = World(tmp_path, engine_retry_seconds=30.0)
    try:
        w.sup.start(w.now)
        child = w.child
        child.emit(ev="unavailable", message="ml-sharp is not installed")
        events = w.step()
        assert events[0]["ev"] == "unavailable"
        assert w.sup.unavailable_reason == "ml-sharp is not installed"
        assert w.sup.state == sv.UNAVAILABLE  # TERM ended it at once
        w.step(29.0)
        assert len(w.children) == 1
        w.step(1.5)
        assert len(w.children) == 2 and w.sup.state == sv.STARTING
    finally:
        w.close()


def test_a_model_that_loads_too_slowly_is_killed(tmp_path: Path) -> None:
    w = World(tmp_path, start_timeout_seconds=10.0)
    try:
        w.sup.start(w.now)
        assert w.step(9.0) == []
        event = lost(w.step(2.0))
        assert event["reason"] == "timeout" and "too long to load" in event["detail"]
        assert event["busy"] is False
    finally:
        w.close()


def test_a_spawn_that_fails_marks_the_engine_unavailable(tmp_path: Path) -> None:
    def broken(_command: WorkerCommand) -> FakeChild:
        raise FileNotFoundError(2, "No such file or directory")

    cfg = Config(tmp_path, None, {"worker": {"python": "/nowhere/python"}})
    sup = sv.Supervisor(cfg, spawn_worker=broken)
    sup.start(0.0)
    assert sup.state == sv.UNAVAILABLE
    assert "/nowhere/python" in sup.unavailable_reason and "No such file" in sup.unavailable_reason


@pytest.mark.parametrize(("device", "limit"), [("mps", 300.0), ("cuda", 300.0), ("cpu", 1800.0)])
def test_the_image_time_limit_follows_the_device_the_worker_reports(
    tmp_path: Path, device: str, limit: float
) -> None:
    """A photo takes about a second on a GPU and minutes on a CPU: "auto" (the default)
    gives each its own limit; past it the worker is stopped, not before."""
    w = World(tmp_path)
    try:
        w.ready(device)
        w.dispatch()
        assert w.step(limit - 1.0) == [], "stopped before the device's limit"
        event = lost(w.step(2.0))
        assert event["reason"] == "timeout" and f"{limit:g} s" in event["detail"]
    finally:
        w.close()


def test_a_time_limit_the_user_set_holds_on_every_device(tmp_path: Path) -> None:
    w = World(tmp_path, image_timeout_seconds=300.0)
    try:
        w.ready("cpu")
        w.dispatch()
        assert lost(w.step(301.0))["reason"] == "timeout"
    finally:
        w.close()


def test_abandon_for_a_cancel_terms_kills_without_blocking_and_reports_no_lost_worker(
    tmp_path: Path,
) -> None:
    w = World(tmp_path, dies_on=set())  # ignores TERM: the KILL must follow after the grace
    try:
        child = w.ready()
        w.dispatch(images=3)
        t0 = w.now
        started = time.perf_counter()
        w.sup.abandon(w.now)
        assert time.perf_counter() - started < PROMPT
        assert w.signals == [(t0, child.pid, signal.SIGTERM)] and w.sup.state == sv.STOPPING
        assert w.step(sv.KILL_GRACE) == []
        assert w.signals[-1] == (t0 + sv.KILL_GRACE, child.pid, signal.SIGKILL)
        child.exit(-signal.SIGKILL)
        assert w.step(0.1) == []  # no worker_lost: the daemon already closed the job
        assert w.sup.state == sv.STARTING and len(w.children) == 2
    finally:
        w.close()
