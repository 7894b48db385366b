"""The daemon: one loop that scans, claims, dispatches and closes jobs.

Lifecycle as in every long-running part here: ``initialize()``, ``loop(now)`` for one
iteration (tests can step it), ``shutdown()``. Signal handlers only set flags and wake the
loop; the loop acts. A second TERM or INT means stop now. This process never imports torch.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import time
from pathlib import Path
from typing import Any

from sharpmld.core import fsio, log
from sharpmld.core.config import Config
from sharpmld.core.errors import InternalError, TooManyAttempts
from sharpmld.core.units import DISK_FULL_ERRNOS
from sharpmld.daemon import access
from sharpmld.daemon.housekeeping import Housekeeping
from sharpmld.daemon.jobrun import OUTCOME_HANDED_BACK, OUTCOME_RETRY, JobRun
from sharpmld.intake.names import is_in_progress, is_junk
from sharpmld.intake.scanner import InboxScanner
from sharpmld.intake.watcher import InboxWatcher
from sharpmld.observers.events import Observer, Observers
from sharpmld.observers.metrics import Metrics
from sharpmld.observers.notify import Notifier
from sharpmld.queue import recovery
from sharpmld.queue.claim import claim
from sharpmld.queue.layout import DAEMON_STATUS_PREFIX, Layout
from sharpmld.queue.lease import Owner, write_lease
from sharpmld.supervisor import supervisor as sv
from sharpmld.supervisor.checkpoint import CheckpointHasher

DEBOUNCE = 0.1
ORPHAN_CHECK_SECONDS = 10.0


class Daemon:
    """The sharpmld daemon for one root."""

    def __init__(self, config: Config, *, burst: bool = False) -> None:
        self.config = config
        self.layout = Layout(config.root)
        self.burst = burst
        self.log = log.get()
        self.owner = Owner.current()
        self.stop_requests = 0
        self.stop_deadline: float | None = None
        self.current: JobRun | None = None
        self.redispatch = False
        self.engine_message = ""
        self.paused = ""  # why no job would be claimed now, as `sharpmld status --check` shows it
        self.scan_due = 0.0
        self.next_orphan_check = 0.0
        self.next_heartbeat = 0.0
        self.finished = False
        self.ready: list[Any] = []
        self._wake_r, self._wake_w = -1, -1
        self.scanner = InboxScanner(
            self.layout.inbox,
            settle=float(config.get("intake", "settle_seconds")),
            marker=str(config.get("intake", "ready_marker")),
            max_entries=int(config.get("limits", "max_entries")),
        )
        self.supervisor = sv.Supervisor(config)
        self.watcher = InboxWatcher(
            self.layout.inbox, self.poke, polling=config.get("intake", "observer") == "polling"
        )
        self.hasher = CheckpointHasher(config.checkpoint, self.layout.state_dir)
        self.housekeeping = Housekeeping(config, self.layout, self.log)
        self.counters: dict[str, int] = {"claimed": 0, "done": 0, "failed": 0, "retried": 0}
        self.metrics: Metrics | None = None
        observers: list[Observer] = [Notifier(config, self.log)]
        if config.get("metrics", "enabled"):
            self.metrics = Metrics(
                self.layout, disk_interval=float(config.get("metrics", "disk_interval_seconds"))
            )
            observers.insert(0, self.metrics)
        self.events = Observers(observers, self.log)

    # -- lifecycle ---------------------------------------------------------------------------

    def initialize(self) -> None:
        """Create the tree, install signal handlers, start the watcher and the worker."""
        access.require_access(self.config.root)
        self.layout.ensure()
        metrics_url = None
        if self.metrics is not None:
            host = str(self.config.get("metrics", "host"))
            port = self.metrics.serve(host, int(self.config.get("metrics", "port")))
            metrics_url = f"http://{host}:{port}/metrics"
        if config_python := self.config.worker_python:
            self.supervisor.package_dir = sv.package_path_for(config_python, self.layout.state_dir)
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        with contextlib.suppress(OSError):
            self.watcher.start()
        self.hasher.start()
        now = time.monotonic()
        self.supervisor.start(now)
        self.log.info(
            "daemon started",
            root=str(self.config.root),
            config=str(self.config.path) if self.config.path else None,
            pid=os.getpid(),
            burst=self.burst,
            metrics=metrics_url,
        )
        self.events.on_started(self)
        self._write_status()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stop_requests += 1

    def poke(self) -> None:
        """Called from the watcher's thread: wake the loop for a rescan."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"w")

    def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        self.initialize()
        try:
            while not self.finished:
                try:
                    self.loop(time.monotonic())
                except Exception as exc:  # a bug must cost one job, never the daemon
                    self._on_loop_error(exc)
        finally:
            self.shutdown()
        return 0

    def _on_loop_error(self, exc: Exception) -> None:
        """Log a bug with its traceback; end the job in flight so it cannot loop forever.

        A full disk is not the job's fault: its input goes back to the inbox. Anything else
        fails the job with ``internal_error``.
        """
        self.log.exception("internal error in the daemon loop", error=repr(exc))
        run = self.current
        if run is not None:
            self.supervisor.stop(grace=1.0)
            full = isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS
            with contextlib.suppress(Exception):
                if full:
                    run.hand_back("disk full")
                else:
                    run.fail(InternalError(f"Processing failed because of an internal error: {exc!r}"))
            self._closed(run)
        time.sleep(1.0)

    def shutdown(self) -> None:
        """Stop the worker and the watcher; hand back a job that is still in flight."""
        if self.current is not None:
            self.supervisor.stop(grace=0.1)
            self._hand_back_current("the daemon stopped")
        self.supervisor.stop(grace=5.0)
        self.watcher.stop()
        self.events.on_stopped()
        with contextlib.suppress(OSError):
            os.unlink(self._status_path())
        signal.set_wakeup_fd(-1)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.log.info("daemon stopped", **self.counters)

    # -- one iteration -----------------------------------------------------------------------

    def loop(self, now: float) -> None:
        """Wait for something to do (bounded), then do it."""
        self._wait(now)
        now = time.monotonic()
        self._handle_stop_requests(now)
        for event in self.supervisor.read_events(now) + self.supervisor.check(now):
            self._on_worker_event(event, now)
        if self.watcher.check():
            self.log.warning("inbox watcher restarted")
        if now >= self.scan_due:
            started = time.perf_counter()
            self.ready = self.scanner.scan(now)
            entries = self.scanner.entries.values()
            self.events.on_scan(
                duration=time.perf_counter() - started,
                waiting=len(self.ready),
                settling=self.scanner.settling,
                oldest_age=max((now - e.first_seen for e in entries), default=0.0),
            )
            interval = float(self.config.get("intake", "scan_interval_seconds"))
            due = self.scanner.next_due()
            self.scan_due = min(now + interval, due) if due is not None else now + interval
        if self.stop_requests:
            self._progress_shutdown(now)
            return
        if self.current is None:
            self._start_next(now)
        elif self.redispatch and self.supervisor.state == sv.READY:
            self._dispatch(now)
        if self.current is not None and now >= self.next_heartbeat:
            write_lease(self.current.job.path, self.owner)
            self.next_heartbeat = now + float(self.config.get("queue", "heartbeat_seconds"))
        if self.paused_reason(now) != self.paused:
            self.paused = self.paused_reason(now)
            self._write_status()
        self.events.on_tick(self, now)
        if self.burst and self.current is None and not self.scanner.entries and self._idle_done():
            self.finished = True

    def _wait(self, now: float) -> None:
        timeout = max(0.0, min(self.scan_due - now, 1.0))
        if self.supervisor.state in (sv.BUSY, sv.STARTING) or self.stop_requests:
            timeout = min(timeout, 0.25)
        fds = [self._wake_r]
        worker_fd = self.supervisor.fileno()
        if worker_fd is not None:
            fds.append(worker_fd)
        try:
            readable, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            readable = []
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                data = os.read(self._wake_r, 4096)
                if b"w" in data:
                    self.scan_due = min(self.scan_due, time.monotonic() + DEBOUNCE)

    # -- claiming ----------------------------------------------------------------------------

    def paused_reason(self, now: float) -> str:
        """Why no job would be claimed now ("" when intake is open)."""
        if self.stop_requests:
            return "shutting_down"
        if self.housekeeping.disk_paused(now):
            return "low_disk"
        if self.supervisor.state == sv.UNAVAILABLE:
            return "engine_unavailable"
        return ""

    def _start_next(self, now: float) -> None:
        self.housekeeping.loop(now)
        if self.paused_reason(now):
            return
        if self.supervisor.state != sv.READY or not self.hasher.done.is_set():
            return
        job = None
        if now >= self.next_orphan_check:
            self.next_orphan_check = now + ORPHAN_CHECK_SECONDS
            job = self._adopt_orphan()
            if job is not None:
                return
        while self.ready:
            entry = self.ready.pop(0)
            self.scanner.forget(entry.name)
            job = claim(self.layout, entry.name, self.owner, priority=entry.priority)
            if job is None:
                continue
            self.counters["claimed"] += 1
            self.log.info("job claimed", job_id=job.job_id, original_name=entry.name)
            ready_at = entry.ready_at if entry.ready_at is not None else now
            self._begin(job, now, settle_wait=ready_at - entry.first_seen, queue_wait=now - ready_at)
            return

    def _adopt_orphan(self) -> Any:
        timeout = float(self.config.get("queue", "lease_timeout_seconds"))
        for path in recovery.find_orphans(self.layout, lease_timeout=timeout):
            if not recovery.has_input(path):
                self.log.info("removing an unfinished claim", path=str(path))
                recovery.release(path)
                continue
            job = recovery.adopt(path, self.owner, lease_timeout=timeout)
            if job is None:
                continue
            self.log.info(
                "recovering job left by a stopped daemon",
                job_id=job.job_id,
                attempts=job.record.attempts,
            )
            self._begin(job, time.monotonic(), settle_wait=-1.0, queue_wait=-1.0)
            return job
        return None

    def _begin(self, job: Any, now: float, *, settle_wait: float, queue_wait: float) -> None:
        run = JobRun(job, self.layout, self.config, self._engine_info())
        self.current = run
        self.events.on_claimed(run, settle_wait=settle_wait, queue_wait=queue_wait)
        if job.record.attempts >= int(self.config.get("queue", "max_attempts")):
            run.fail(TooManyAttempts(history=job.record.history))
            self._closed(run)
            return
        if run.prepare() is None:
            self._closed(run)
            return
        self.events.on_dispatched(run, validation=time.monotonic() - now)
        self._dispatch(now)

    def _dispatch(self, now: float) -> None:
        run = self.current
        assert run is not None and run.request is not None
        self.redispatch = False
        user = str(self.config.get("worker", "user"))
        if user and os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam(user)
            os.chown(run.job.path, entry.pw_uid, entry.pw_gid)
        run.charge_attempt()
        self.supervisor.send_job(run.request, now)
        self._write_status()

    def _closed(self, run: JobRun) -> None:
        self.events.on_finished(run, run.outcome)
        if run.outcome in ("done", "failed"):
            self.counters[run.outcome] += 1
        if run.outcome == OUTCOME_HANDED_BACK:
            self.housekeeping.disk_filled_up()
        self.current = None
        self.redispatch = False
        self._write_status()

    def _idle_done(self) -> bool:
        """Burst mode ends when nothing waits anywhere this daemon could act on."""
        try:
            inbox_left = any(not (is_junk(n) or is_in_progress(n)) for n in os.listdir(self.layout.inbox))
        except FileNotFoundError:
            inbox_left = False
        if inbox_left:
            return False
        timeout = float(self.config.get("queue", "lease_timeout_seconds"))
        return next(recovery.find_orphans(self.layout, lease_timeout=timeout), None) is None

    # -- worker events -----------------------------------------------------------------------

    def _on_worker_event(self, event: dict[str, Any], now: float) -> None:
        kind = event.get("ev")
        run = self.current
        if kind in ("ready", "unavailable", "worker_lost", "worker_recycled"):
            self.events.on_worker(event)
        if kind == "worker_recycled":
            self.log.info("worker recycled", images=event.get("images"))
        if kind == "ready":
            info = self.supervisor.info
            self.engine_message = ""
            self.log.info(
                "engine ready",
                device=info.device,
                torch=info.torch,
                load_seconds=info.load_seconds,
                load_method=event.get("load_method"),
            )
            self._write_status()
        elif kind == "unavailable":
            message = self.supervisor.unavailable_reason or str(event.get("message"))
            if message != self.engine_message:
                self.engine_message = message
                retry = self.config.get("worker", "engine_retry_seconds")
                self.log.error(
                    "engine unavailable; jobs wait in the inbox",
                    reason=message,
                    retry_in_seconds=retry,
                    fix="run `sharpmld doctor`",
                )
            self._write_status()
        elif kind == "worker_lost":
            self.log.warning("worker lost", reason=event.get("reason"), detail=event.get("detail"))
            if run is not None and event.get("busy"):
                outcome = run.worker_lost(str(event["reason"]), str(event.get("detail", "")))
                if outcome == OUTCOME_RETRY:
                    self.counters["retried"] += 1
                    self.events.on_finished(run, OUTCOME_RETRY)
                    self.redispatch = True
                else:
                    self._closed(run)
        elif run is not None and event.get("job_id") == run.job.job_id:
            if kind == "image_done":
                self.events.on_image(run, event)
            if run.on_event(event):
                run.complete()
                self._closed(run)

    # -- stopping ----------------------------------------------------------------------------

    def _handle_stop_requests(self, now: float) -> None:
        if self.stop_requests and self.stop_deadline is None:
            grace = float(self.config.get("queue", "shutdown_grace_seconds"))
            self.stop_deadline = now + grace
            self.log.info("stopping: no new jobs; finishing the one in flight", grace_seconds=grace)

    def _progress_shutdown(self, now: float) -> None:
        force = self.stop_requests > 1 or (self.stop_deadline is not None and now >= self.stop_deadline)
        if self.current is None or self.redispatch or force:
            self.finished = True  # shutdown() hands back a job still in flight

    def _hand_back_current(self, why: str) -> None:
        run = self.current
        if run is None:
            return
        run.hand_back(why)
        self.current = None

    # -- status ------------------------------------------------------------------------------

    def _engine_info(self) -> dict[str, Any]:
        info = self.supervisor.info
        return {
            "device": info.device,
            "torch": info.torch,
            "model": self.config.get("model", "factory"),
            "checkpoint": str(self.config.checkpoint),
            "checkpoint_sha256": self.hasher.value,
            "load_seconds": info.load_seconds,
        }

    def _status_path(self) -> Path:
        return self.layout.state_dir / f"{DAEMON_STATUS_PREFIX}{socket.gethostname()}-{os.getpid()}.json"

    def _write_status(self) -> None:
        """A small file `sharpmld status` reads to tell what this daemon is doing."""
        status = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": self.owner.started,
            "engine": self.supervisor.state,
            "engine_message": self.engine_message,
            "paused": self.paused,
            "device": self.supervisor.info.device,
            "current_job": self.current.job.job_id if self.current else None,
            "updated": time.time(),
            "counters": self.counters,
            "metrics_port": self.metrics.port if self.metrics else None,
        }
        with contextlib.suppress(OSError):
            fsio.write_json(self._status_path(), status)
