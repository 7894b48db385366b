"""The daemon's side of the worker: start it, watch it, time it out, restart it.

Lives in the daemon process and never imports torch. A state machine stepped by the daemon's
loop: ``start(now)``, ``step(now)`` (never blocks), ``stop()`` (at daemon exit; bounded).
Stopping is a state with deadlines, not a wait: TERM is sent at t0, KILL at t0 + grace, and the
worker is reaped on the first step that finds it gone, so the daemon keeps scanning,
heartbeating and answering signals meanwhile. The worker runs in its own process group, so
one ``killpg`` reaches it and anything it started; its exit status becomes the reason the job
in flight failed.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sharpmld.core import memcap
from sharpmld.core.config import Config
from sharpmld.core.errors import ProtocolError, SandboxUnavailable
from sharpmld.protocol import (
    ImageDone,
    ImageFailed,
    ImageStarted,
    JobDone,
    JobRequest,
    Stop,
    SupervisorEvent,
    WorkerLost,
    WorkerReady,
    WorkerRecycled,
    WorkerUnavailable,
    encode,
)
from sharpmld.supervisor import pipe, procs, sandbox, spawn
from sharpmld.supervisor.memory import MemorySampler, TreeMemory
from sharpmld.supervisor.procs import Child
from sharpmld.supervisor.stopping import (
    KILL_GRACE,
    LOST,
    REAP_SECONDS,
    RECYCLE,
    RECYCLE_GRACE,
    SHUTDOWN,
    UNAVAIL,
    Stopping,
)

STOPPED = "stopped"
STARTING = "starting"
READY = "ready"
BUSY = "busy"
STOPPING = "stopping"
UNAVAILABLE = "unavailable"
BACKOFF = "backoff"

MAX_BACKOFF = 60.0
START_FAILURES_BEFORE_UNAVAILABLE = 5
STOP_POLL = 0.02
__all__ = ["KILL_GRACE", "REAP_SECONDS", "RECYCLE_GRACE", "Supervisor", "WorkerInfo"]


@dataclass
class WorkerInfo:
    """What the worker said about itself when it became ready."""

    device: str = ""
    torch: str = ""
    load_seconds: float = 0.0
    pid: int = 0
    accelerator_bytes: int = 0  # after the last job, as the worker measured it (0: CPU)


class Supervisor:
    """One worker subprocess and its lifecycle: ``start``, ``step``, ``stop``."""

    def __init__(
        self,
        config: Config,
        package_dir: Path | None = None,
        *,
        spawn_worker: Callable[[spawn.WorkerCommand], Child] = spawn.launch,
        signal_group: Callable[[int, int], bool] = procs.signal_group,
        memory: Callable[[int], int] | None = None,
        ram: Callable[[], int] = memcap.physical_ram,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        probe_sandbox: Callable[[list[str]], None] = sandbox.probe,
    ) -> None:
        """``memory`` measures the worker's process tree (default: :class:`TreeMemory` for this
        platform); ``ram`` is the physical memory an ``"auto"`` cap is a share of;
        ``probe_sandbox`` tries the sandbox tool once before the first worker it wraps."""
        self.config = config
        self.package_dir = package_dir
        self.state = STOPPED
        self.info = WorkerInfo()
        self.unavailable_reason = ""
        self._spawn = spawn_worker
        self._probe_sandbox = probe_sandbox
        self._sandbox_works: tuple[str, ...] | None = None
        self._signal = signal_group
        measure = memory if memory is not None else TreeMemory()
        self._memory = MemorySampler(measure, clock, kind=getattr(measure, "kind", "memory"))
        # Resolved once: the worker's MPS cap, the kill threshold and the metrics all use it.
        self.memory_cap = memcap.resolve(config.get("worker", "max_memory_mb"), ram)
        self._clock = clock
        self._sleep = sleep
        self._out: list[SupervisorEvent] = []
        self._child: Child | None = None
        self._events_fd: int | None = None
        self._parser = pipe.EventParser()
        self._stopping: Stopping | None = None
        self._next_start = 0.0
        self._started_at = 0.0
        self._job_started = 0.0
        self._last_progress = 0.0
        self._start_failures = 0
        self._crashes = 0
        self._images_served = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def fileno(self) -> int | None:
        """The events pipe, for the daemon's select()."""
        return self._events_fd

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child else None

    def start(self, now: float) -> None:
        """Launch a worker; it reports ``ready`` or ``unavailable`` on its events pipe."""
        if self._child is not None:
            return
        read_fd, write_fd = os.pipe()
        try:
            command = spawn.worker_command(
                self.config,
                events_fd=write_fd,
                package_dir=self.package_dir,
                memory_cap_mb=self.memory_cap.mb,
            )
            self._check_sandbox(command.sandbox)
            child = self._spawn(command)
        except SandboxUnavailable as exc:
            os.close(read_fd)
            os.close(write_fd)
            self._mark_unavailable(now, f"{exc.message}. {exc.advice}")
            self._out.append(WorkerUnavailable(self.unavailable_reason))  # no worker to say it
            return
        except (OSError, ValueError, KeyError) as exc:
            os.close(read_fd)
            os.close(write_fd)
            python = self.config.worker_python or sys.executable
            reason = getattr(exc, "strerror", None) or str(exc)
            self._mark_unavailable(now, f"cannot start the worker with {python}: {reason}")
            return
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self._child = child
        self._events_fd = read_fd
        self._parser = pipe.EventParser()
        self.state = STARTING
        self._started_at = now

    def _check_sandbox(self, prefix: tuple[str, ...]) -> None:
        """Probe the sandbox tool once per prefix (a few ms), so a tool the kernel refuses is
        reported in its own words rather than as the worker exiting with status 1."""
        if prefix and prefix != self._sandbox_works:
            self._probe_sandbox(list(prefix))
            self._sandbox_works = prefix

    def step(self, now: float) -> list[SupervisorEvent]:
        """One iteration: read what the worker said, then the time-based duties. Never blocks."""
        return self.read_events(now) + self.check(now)

    def stop(self, grace: float = 10.0) -> None:
        """Stop the worker (daemon exit, or a job abandoned): bounded by grace + REAP_SECONDS.

        An idle worker is asked to exit and TERMed after ``grace``; a busy or loading one is
        TERMed at once and KILLed after ``grace``. Nothing is reported: the caller decides
        what becomes of the job in flight.
        """
        now = self._clock()
        if self._child is None:
            self.state = STOPPED
            return
        if self._stopping is None:
            self._begin_stop(now, SHUTDOWN, polite=self.state == READY, grace=grace)
        else:
            self._stopping.cause = SHUTDOWN
            self._stopping.hurry(now, grace)
        while self.state == STOPPING:
            self._step_stopping(self._clock())
            if self.state == STOPPING:
                self._sleep(STOP_POLL)
        self.state = STOPPED

    def abandon(self, now: float) -> None:
        """Kill the busy worker for a job cancelled with ``--now``, without blocking the loop.

        TERM at once, KILL after ``KILL_GRACE``, and a fresh worker as soon as it is reaped;
        no ``WorkerLost`` is reported, since the caller has already closed the job.
        """
        if self._child is None or self.state not in (BUSY, READY):
            return
        self._begin_stop(now, RECYCLE, polite=False, grace=KILL_GRACE)

    # -- jobs --------------------------------------------------------------------------------

    def send_job(self, request: JobRequest, now: float) -> None:
        """Hand a job to a ready worker."""
        if self.state != READY or self._child is None:
            raise RuntimeError(f"worker is {self.state}, not ready")
        self.state = BUSY
        self._job_started = self._last_progress = now
        self._child.send(encode(request))  # if it died, its pipe's EOF says so

    def read_events(self, now: float) -> list[SupervisorEvent]:
        """Drain the events pipe; EOF means the worker is gone, reported once it is reaped.

        At most ``pipe.MAX_READS`` chunks per call, so a worker that floods the pipe cannot hold
        the daemon's loop; the rest is read on the next step.
        """
        for _ in range(pipe.MAX_READS):
            if self._events_fd is None:
                break
            chunk = pipe.read_chunk(self._events_fd)
            if chunk is None:
                break
            if not chunk:
                self._on_eof(now)
                break
            if self.state == STOPPING:
                continue  # a worker being stopped has nothing more to say that counts
            try:
                events, garbled = self._parser.feed(chunk)
            except ProtocolError as exc:
                self._lose(now, "crash", exc.message)
                break
            for message in events:
                self._on_event(message, now)
                if self.state == STOPPING:
                    break
            if garbled and self.state != STOPPING:  # a worker that garbles its events cannot be trusted
                self._lose(now, "crash", garbled)
        return self._drain()

    def check(self, now: float) -> list[SupervisorEvent]:
        """Time-based duties: start when due, enforce time and memory limits, progress a stop."""
        if self.state == STOPPING:
            self._step_stopping(now)  # once reaped, a due restart happens right below
        if self.state in (STOPPED, BACKOFF, UNAVAILABLE) and now >= self._next_start:
            self.start(now)
        elif self.state == STARTING:
            if now - self._started_at > float(self.config.get("worker", "start_timeout_seconds")):
                self._lose(now, "timeout", "the model took too long to load")
        elif self.state == BUSY:
            device = self.info.device
            image_limit = self.config.seconds_for_device("worker", "image_timeout_seconds", device)
            job_limit = self.config.seconds_for_device("worker", "job_timeout_seconds", device)
            if now - self._last_progress > image_limit:
                self._lose(now, "timeout", f"an image took over {image_limit:g} s")
            elif now - self._job_started > job_limit:
                self._lose(now, "timeout", f"the job took over {job_limit:g} s")
            elif over := self._memory.over(self.pid, self.memory_cap.mb):
                self._lose(now, "memory", over)
        return self._drain()

    def memory_bytes(self, max_age: float = 1.0) -> int:
        """Bytes the worker's process tree holds (the footprint on macOS), sampled at most once
        per ``max_age``."""
        return self._memory.bytes(self.pid, max_age)

    # -- what the worker says ----------------------------------------------------------------

    def _on_event(self, event: SupervisorEvent, now: float) -> None:
        self._out.append(event)
        if isinstance(event, WorkerReady):
            self.state = READY
            self._start_failures = 0
            self.unavailable_reason = ""
            self.info = WorkerInfo(
                device=event.device, torch=event.torch, load_seconds=event.load_seconds, pid=event.pid
            )
        elif isinstance(event, WorkerUnavailable):
            self._mark_unavailable(now, event.message)
        elif isinstance(event, ImageStarted | ImageDone | ImageFailed):
            self._last_progress = now
            if isinstance(event, ImageDone):
                self._images_served += 1
        elif isinstance(event, JobDone):
            self._crashes = 0
            self.state = READY
            self.info.accelerator_bytes = event.accelerator_bytes or 0
            limit = int(self.config.get("worker", "max_images_per_worker"))
            if limit and self._images_served >= limit:
                self._out.append(WorkerRecycled(self._images_served))
                self._images_served = 0
                self._begin_stop(now, RECYCLE, polite=True, grace=RECYCLE_GRACE)

    def _on_eof(self, now: float) -> None:
        self._close_events()
        if self._stopping is None:  # it exited on its own: give it a moment, then KILL
            self._stopping = Stopping(
                LOST, reason="crash", busy=self.state == BUSY, starting=self.state == STARTING
            )
            self._stopping.on_eof(now)
            self.state = STOPPING
        self._step_stopping(now)

    def _mark_unavailable(self, now: float, reason: str) -> None:
        self.unavailable_reason = reason
        self._next_start = now + float(self.config.get("worker", "engine_retry_seconds"))
        if self._child is None:
            self.state = UNAVAILABLE
        else:
            self._begin_stop(now, UNAVAIL, polite=False, grace=KILL_GRACE)

    def _lose(self, now: float, reason: str, detail: str) -> None:
        """Give up on the worker: TERM now, KILL after the grace; report once it is reaped."""
        lost = Stopping(LOST, reason=reason, detail=detail, busy=self.state == BUSY)
        self._begin_stop(now, LOST, polite=False, grace=KILL_GRACE, report=lost)

    # -- stopping ----------------------------------------------------------------------------

    def _begin_stop(
        self, now: float, cause: str, *, polite: bool, grace: float, report: Stopping | None = None
    ) -> None:
        """Enter STOPPING. Polite: ask the idle worker to exit, TERM after ``grace``, KILL
        ``KILL_GRACE`` later. Otherwise TERM now and KILL after ``grace``. ``report`` carries
        what to say about a lost worker once it is reaped."""
        asked = polite and self._child is not None and self._child.send(encode(Stop()))
        s = report or Stopping(cause)
        s.cause = cause
        s.schedule(now, asked=asked, grace=grace)
        self._stopping = s
        self.state = STOPPING
        self._step_stopping(now)

    def _step_stopping(self, now: float) -> None:
        """Send what is due, reap the worker if it is gone, and move on when it is."""
        s, child = self._stopping, self._child
        if s is None:
            return
        finished, code = s.advance(child, now, self._signal) if child is not None else (True, None)
        if finished:
            self._finish_stop(now, s, code)

    def _finish_stop(self, now: float, s: Stopping, code: int | None) -> None:
        child, self._child, self._stopping = self._child, None, None
        self._close_events()
        if child is not None:
            child.close()
            self._signal(child.pid, signal.SIGKILL)  # anything it left behind in its group
        exit_text = procs.describe_exit(code)
        if s.cause == RECYCLE:
            self.state, self._next_start = STOPPED, now
        elif s.cause == UNAVAIL:
            self.state = UNAVAILABLE
        elif s.cause == SHUTDOWN:
            self.state = STOPPED
        elif s.starting and s.reason == "crash" and self._count_start_failure(now, exit_text):
            self._out.append(WorkerUnavailable(self.unavailable_reason))
        else:
            self._crashes += 1
            self.state = BACKOFF
            self._next_start = now + min(MAX_BACKOFF, 2.0 ** min(self._crashes - 1, 6))
            self._out.append(WorkerLost(s.reason, s.detail or exit_text, s.busy, exit=exit_text))

    def _count_start_failure(self, now: float, exit_text: str) -> bool:
        """Count a worker that died while loading; True when that makes the engine unavailable."""
        self._start_failures += 1
        if self._start_failures < START_FAILURES_BEFORE_UNAVAILABLE:
            return False
        self._mark_unavailable(
            now, f"the worker failed to start {self._start_failures} times in a row; last: {exit_text}"
        )
        return True

    # -- helpers -----------------------------------------------------------------------------

    def _close_events(self) -> None:
        pipe.close(self._events_fd)
        self._events_fd = None

    def _drain(self) -> list[SupervisorEvent]:
        out, self._out = self._out, []
        return out


# Kept importable from here: the daemon finds it in this module.
package_path_for = spawn.package_path_for
