"""A scripted stand-in for the Supervisor, and a daemon built on it with a fake clock.

``FakeWorker`` has the public methods the daemon calls on a Supervisor (``start``, ``stop``,
``send_job``, ``abandon``, ``read_events``, ``check``, ``fileno``, ``memory_bytes``, ``state``, ``info``,
``unavailable_reason``) and nothing else; the test decides what the worker does and when.
Time is whatever the test passes to ``step(now)``: nothing here reads a clock or sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from sharpmld.core import config
from sharpmld.daemon.loop import Daemon
from sharpmld.protocol import (
    ImageDone,
    ImageFailed,
    ImageStarted,
    JobDone,
    JobRequest,
    SupervisorEvent,
    WorkerLost,
    WorkerReady,
    WorkerUnavailable,
)
from sharpmld.supervisor import supervisor as sv
from sharpmld.supervisor.supervisor import WorkerInfo
from tests.intake import corpus

JOB_TIMEOUT = 50.0


class FakeWorker:
    """A worker that only does what the test tells it to."""

    def __init__(self, *, job_timeout: float = JOB_TIMEOUT) -> None:
        self.state = sv.STOPPED
        self.info = WorkerInfo()
        self.unavailable_reason = ""
        self.package_dir: Path | None = None
        self.job_timeout = job_timeout
        self.sent: list[JobRequest] = []
        self.stops: list[float] = []
        self.abandoned: list[float] = []
        self._events: list[SupervisorEvent] = []
        self._job_started = 0.0

    # -- the Supervisor's interface ----------------------------------------------------------

    def start(self, now: float) -> None:
        self.state = sv.STARTING

    def stop(self, grace: float = 10.0) -> None:
        self.stops.append(grace)
        self.state = sv.STOPPED

    def abandon(self, now: float) -> None:
        # Like Supervisor.abandon: the worker is killed and nothing is reported.
        self.abandoned.append(now)
        self._events = []
        self.state = sv.STOPPED

    def fileno(self) -> int | None:
        return None

    def send_job(self, request: JobRequest, now: float) -> None:
        if self.state != sv.READY:
            raise RuntimeError(f"worker is {self.state}, not ready")
        self.state = sv.BUSY
        self._job_started = now
        self.sent.append(request)

    def read_events(self, now: float) -> list[SupervisorEvent]:
        out, self._events = self._events, []
        return out

    def check(self, now: float) -> list[SupervisorEvent]:
        if self.state == sv.BUSY and now - self._job_started > self.job_timeout:
            return [self._lose("timeout", f"the job took over {self.job_timeout:g} s")]
        return []

    def memory_bytes(self, max_age: float = 1.0) -> int:
        return 0

    # -- the script --------------------------------------------------------------------------

    def become_ready(self) -> None:
        self.state = sv.READY
        self.info = WorkerInfo(device="cpu", torch="fake", load_seconds=0.5, pid=4242)
        self._events.append(WorkerReady(pid=4242, device="cpu", torch="fake", load_seconds=0.5))

    def become_unavailable(self, message: str) -> None:
        self.state = sv.UNAVAILABLE
        self.unavailable_reason = message
        self._events.append(WorkerUnavailable(message))

    def finish_images(self, *, ok: bool = True, code: str = "model_error") -> None:
        """Report every image of the last job sent, then the job's end."""
        request = self.sent[-1]
        for index, task in enumerate(request.images):
            if ok:
                result = {"gaussians": 10, "outputs": {}}
                self._events.append(ImageDone(request.job_id, task.rel, index, "0" * 64, result))
            else:
                failed = ImageFailed(request.job_id, task.rel, index, code, "the worker says no")
                self._events.append(failed)
        self._events.append(JobDone(request.job_id))
        self.state = sv.READY

    def start_image(self, index: int) -> None:
        """Report that the worker began one image of the last job sent."""
        request = self.sent[-1]
        self._events.append(ImageStarted(request.job_id, request.images[index].rel, index))

    def fail_image(self, index: int, code: str = "decode_failed") -> None:
        """Report one image of the last job sent as refused by the worker; the job goes on."""
        request = self.sent[-1]
        task = request.images[index]
        self._events.append(ImageFailed(request.job_id, task.rel, index, code, "the worker says no"))

    def finish_image(self, index: int) -> None:
        """Report one image of the last job sent as done; the job goes on."""
        request = self.sent[-1]
        task = request.images[index]
        result = {"gaussians": 10, "outputs": {}}
        self._events.append(ImageDone(request.job_id, task.rel, index, "0" * 64, result))

    def die(self, reason: str = "crash", detail: str = "exit code -9") -> None:
        self._events.append(self._lose(reason, detail))

    def _lose(self, reason: str, detail: str) -> WorkerLost:
        busy = self.state == sv.BUSY
        self.state = sv.BACKOFF
        return WorkerLost(reason, detail, busy)


class FakeWatcher:
    """An inbox watcher whose start fails ``failures`` times before it works."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.starts = 0
        self.running = False
        self.restarts = 0

    def start(self) -> None:
        self.starts += 1
        if self.starts <= self.failures:
            raise OSError(28, "inotify watch limit reached")
        self.running = True

    def check(self) -> bool:
        return False

    def stop(self) -> None:
        self.running = False


@dataclass
class Rig:
    """A daemon on a temp root, its fake worker, and the fake time the test moves."""

    root: Path
    daemon: Daemon
    worker: FakeWorker
    watcher: FakeWatcher
    now: float = 1000.0
    stepped: list[float] = field(default_factory=list)

    def step(self, seconds: float = 0.0) -> None:
        """Move the clock on by ``seconds`` and let the daemon do one iteration."""
        self.now += seconds
        self.stepped.append(self.now)
        self.daemon.step(self.now)

    def drop_folder(self, name: str = "kitchen", images: int = 1) -> Path:
        folder = self.root / "inbox" / name
        folder.mkdir(parents=True)
        for n in range(images):
            corpus.write_jpeg(folder / f"IMG_{n}.jpg")
        return folder

    def until_dispatched(self) -> None:
        """Step (settle time passing) until the worker has been handed a job."""
        sent = len(self.worker.sent)
        for _ in range(20):
            self.step(1.0)
            if len(self.worker.sent) > sent:
                return
        raise AssertionError("the daemon never dispatched the job")

    def jobs(self, state: str) -> list[Path]:
        folder = self.root / state
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def make_config(root: Path, *, intake: dict[str, Any] | None = None, **queue: Any) -> config.Config:
    """Fast settling, no metrics server, no notifications; ``queue`` overrides [queue] and
    ``intake`` adds to [intake]."""
    root.mkdir(parents=True, exist_ok=True)
    fast = {"settle_seconds": 0.5, "scan_interval_seconds": 1.0, "observer": "polling"}
    data = {
        "intake": {**fast, **(intake or {})},
        "metrics": {"enabled": False},
        "queue": {"heartbeat_seconds": 5.0, "shutdown_grace_seconds": 30.0, **queue},
    }
    (root / config.CONFIG_NAME).write_text(tomli_w.dumps(data))
    return config.load(root=root, environ={})


def make_rig(
    tmp_path: Path, *, watcher_failures: int = 0, intake: dict[str, Any] | None = None, **queue: Any
) -> Rig:
    root = tmp_path / "root"
    worker = FakeWorker()
    watcher = FakeWatcher(failures=watcher_failures)
    daemon = Daemon(make_config(root, intake=intake, **queue), supervisor=worker, watcher=watcher)
    rig = Rig(root=root, daemon=daemon, worker=worker, watcher=watcher)
    daemon.start(rig.now)
    assert daemon.hasher.done.wait(10), "the checkpoint digest never finished"
    return rig
