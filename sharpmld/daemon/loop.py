"""The daemon: one loop that scans, claims, dispatches and closes jobs.

Lifecycle as in every long-running part here: ``start(now)``, ``step(now)`` for one iteration
of work that never blocks (the clock is passed in, so a test drives it with a fake one), and
``stop()``. ``run()`` is the only place that waits: it alternates ``Waiter.wait(timeout)`` and
``step(clock())``. Signal handlers only count stop requests (see ``stopping``). This process
never imports torch: the model lives in the worker the supervisor runs.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from sharpmld.core import log, memcap
from sharpmld.core.config import Config
from sharpmld.core.units import MB
from sharpmld.daemon import access, cancelling, claiming, mishaps, routing
from sharpmld.daemon.held import HeldBack
from sharpmld.daemon.housekeeping import Housekeeping
from sharpmld.daemon.jobrun import OUTCOME_HANDED_BACK, JobRun
from sharpmld.daemon.status import (
    engine_info,
    note_scan,
    remove_status,
    sweep_dead_status,
    write_status,
)
from sharpmld.daemon.stopping import StopPolicy
from sharpmld.daemon.targets import remove_target, sweep_targets, write_target
from sharpmld.daemon.waiting import Waiter
from sharpmld.daemon.watching import WatcherKeeper
from sharpmld.intake.scanner import Entry, InboxScanner
from sharpmld.intake.watcher import InboxWatcher
from sharpmld.observers.events import DaemonFacts, Observer, Observers
from sharpmld.observers.metrics import Metrics
from sharpmld.observers.notify import Notifier
from sharpmld.queue import cache_index
from sharpmld.queue.layout import Layout
from sharpmld.queue.lease import LeaseLost, Owner, holds, server_time, write_lease
from sharpmld.queue.record import Job
from sharpmld.supervisor import supervisor as sv
from sharpmld.supervisor.checkpoint import CheckpointHasher
from sharpmld.supervisor.spawn import give_job_folder

DEBOUNCE = 0.1
MAX_WAIT = 1.0
BUSY_WAIT = 0.25  # while the worker starts or works, or while stopping: notice progress soon
BROKER_DOWN_SCAN = 300.0
"""The periodic inbox rescan's period while the cluster's broker is away. Nothing is claimed
then, the watcher's events still rescan on every change, and a full rescan of 10,000 waiting
folders costs about half a core-second (every 5 s, a tenth of a core); once the broker is
back, the inbox is rescanned before anything is claimed."""


class Daemon:
    """The sharpmld daemon for one root.

    ``supervisor`` and ``watcher`` may be given (tests pass fakes with the same public
    methods); by default the daemon makes the real ones.
    """

    def __init__(
        self,
        config: Config,
        *,
        burst: bool = False,
        supervisor: Any = None,
        watcher: Any = None,
        waiter: Waiter | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.wall_clock = wall_clock  # what the lease's heartbeat says, for people only
        self.layout = Layout(config.root)
        self.burst = burst
        self.log = log.get()
        self.owner = Owner.current()
        self.lease_timeout = float(config.get("queue", "lease_timeout_seconds"))
        self.heartbeat = float(config.get("queue", "heartbeat_seconds"))
        self.stopping = StopPolicy(float(config.get("queue", "shutdown_grace_seconds")), self.log)
        self.current: JobRun | None = None
        self.redispatch = False
        self.unavailable_logged = ""
        self.paused = ""  # why no job would be claimed now, as the status file says
        self.scan_due = 0.0
        self.next_orphan_check = 0.0
        self.next_heartbeat = 0.0
        self.quiet_until = 0.0
        self.finished = False
        self.ready: list[Entry] = []
        self.held = HeldBack()  # what the status file says is held back in the inbox, and why
        self.scanner = InboxScanner(
            self.layout.inbox,
            settle=float(config.get("intake", "settle_seconds")),
            marker=str(config.get("intake", "ready_marker")),
            max_entries=int(config.get("limits", "max_entries")),
            in_progress_hold=float(config.get("intake", "in_progress_seconds")),
        )
        self.waiter = waiter or Waiter()
        cluster_url = str(config.get("cluster", "url"))
        if supervisor is None and cluster_url:
            from sharpmld.daemon.cluster.engine import RemoteEngine  # the models run on workers

            supervisor = RemoteEngine()
        self.supervisor = supervisor if supervisor is not None else sv.Supervisor(config)
        polling = config.get("intake", "observer") == "polling"
        self.watcher = watcher or InboxWatcher(self.layout.inbox, self.waiter.poke, polling=polling)
        scan_interval = float(config.get("intake", "scan_interval_seconds"))
        self.watching = WatcherKeeper(self.watcher, self.log, scan_interval)
        self.hasher = CheckpointHasher(config.checkpoint, self.layout.state_dir)
        self.housekeeping = Housekeeping(config, self.layout, self.log)
        self.metrics: Metrics | None = None
        observers: list[Observer] = [Notifier(config, self.log)]
        if config.get("metrics", "enabled"):
            self.metrics = Metrics(
                self.layout,
                disk_interval=float(config.get("metrics", "disk_interval_seconds")),
                memory_limit_bytes=memcap.resolve(config.get("worker", "max_memory_mb")).bytes,
                min_free_bytes=int(float(config.get("intake", "min_free_mb")) * MB),
            )
            observers.insert(0, self.metrics)
        self.cluster: Any = None  # the cluster intake, with [cluster] url set
        self.scanned_offline = False  # the last scan was made while the broker was away
        self.next_cluster_status = 0.0
        if cluster_url and self.metrics is not None:
            from sharpmld.observers.cluster_metrics import ClusterMetrics

            observers.insert(1, ClusterMetrics(self.metrics))
        self.events = Observers(observers, self.log)
        if cluster_url:
            # Imported here only: the single-host mode needs neither nats-py nor these modules.
            from sharpmld.daemon.cluster.intake import ClusterIntake

            self.cluster = ClusterIntake(
                config,
                self.layout,
                self.owner,
                self.log,
                self.events,
                engine=lambda: engine_info(self),
                wake=self.waiter.nudge,
            )
        self.events = Observers(observers, self.log)

    # -- lifecycle ---------------------------------------------------------------------------

    def run(self, clock: Callable[[], float] = time.monotonic) -> int:
        """Run until stopped; returns the process exit code. The only loop that waits."""
        self.waiter.open()
        self.stopping.install(self.waiter.signal_fd)
        try:
            self.start(clock())  # a root we cannot use ends here, before anything started
            try:
                while not self.finished:
                    if self.waiter.wait(self.timeout(clock()), self.supervisor.fileno()):
                        self.poked(clock())
                    self.step(clock())
            finally:
                self.stop()
        finally:
            self.stopping.uninstall()
            self.waiter.close()
        return 0

    def start(self, now: float) -> None:
        """Create the tree, start serving metrics, the watcher, the hasher and the worker."""
        access.require_access(self.config.root)
        self.layout.ensure()
        metrics_url = None
        if self.metrics is not None:
            host = str(self.config.get("metrics", "host"))
            port = self.metrics.serve(host, int(self.config.get("metrics", "port")))
            metrics_url = f"http://{host}:{port}/metrics"
            write_target(self.layout.state_dir, host, port, root=self.config.root)
        if config_python := self.config.worker_python:
            self.supervisor.package_dir = sv.package_path_for(config_python, self.layout.state_dir)
        self.watching.start(now)
        self.hasher.start()
        self.housekeeping.start()
        self.supervisor.start(now)
        if self.cluster is not None:
            self.cluster.start(now)
        self.log.info(
            "daemon started",
            root=str(self.config.root),
            config=str(self.config.path) if self.config.path else None,
            pid=os.getpid(),
            burst=self.burst,
            metrics=metrics_url,
        )
        self.events.start(self.facts(now))
        sweep_dead_status(self.layout.state_dir)
        cache_index.sweep_leftovers(
            self.layout.state_dir / cache_index.CACHE_DIR,
            server_now=server_time(self.layout.state_dir, self.owner),
            stale_after=self.lease_timeout,
        )
        write_status(self)
        sweep_targets(self.layout.state_dir)  # after our own status file exists

    def stop(self) -> None:
        """Stop the worker and the watcher; hand back a job that is still in flight."""
        run = self.current
        if run is not None:
            self.supervisor.stop(grace=0.1)
            try:
                run.hand_back("the daemon stopped")
            except LeaseLost:
                mishaps.forget(self, run)
            except Exception as exc:  # stop the rest regardless; recovery takes the job
                mishaps.release(self, run, exc)
            self.current = None
        self.supervisor.stop(grace=5.0)
        if self.cluster is not None:
            self.cluster.stop()
        self.watching.stop()
        self.housekeeping.stop()
        self.events.stop()
        remove_status(self.layout.state_dir)
        remove_target(self.layout.state_dir)
        self.log.info("daemon stopped")

    def request_stop(self) -> None:
        """What a TERM does: the first drains, the second stops now."""
        self.stopping.request()

    def timeout(self, now: float) -> float:
        """How long ``run`` may wait before the next step is due."""
        timeout = max(0.0, min(self.scan_due - now, MAX_WAIT))
        busy = self.supervisor.state in (sv.BUSY, sv.STARTING, sv.STOPPING) or self.stopping.requested
        if busy or self.cluster is not None:  # the cluster's answers come as futures: look soon
            timeout = min(timeout, BUSY_WAIT)
        return max(timeout, min(self.quiet_until - now, MAX_WAIT))

    def poked(self, now: float) -> None:
        """The inbox changed: rescan soon (debounced: one copy fires many events)."""
        self.scan_due = min(self.scan_due, now + DEBOUNCE)

    # -- one iteration -----------------------------------------------------------------------

    def step(self, now: float) -> None:
        """One iteration of work at time ``now``; returns at once when nothing is due."""
        if self.finished or now < self.quiet_until:
            return
        for part in (self._step, self._finish_if_done):  # a failing scan must not block a stop
            try:
                part(now)
            except LeaseLost:  # another daemon adopted the job while this one was paused
                mishaps.taken_over(self, now)
            except Exception as exc:  # a bug must cost one job, never the daemon
                mishaps.on_step_error(self, exc, now)

    def _step(self, now: float) -> None:
        self.stopping.step(now)
        # Heartbeat first, on every step, draining included: a job that drains must keep its
        # lease (or another host adopts it); and a daemon back from a pause must learn that
        # the job was adopted before it applies a single worker event to it (fencing).
        if self.current is not None and now >= self.next_heartbeat:
            self.heartbeat_lease()
            self.next_heartbeat = now + self.heartbeat
        for event in self.supervisor.read_events(now) + self.supervisor.check(now):
            routing.route(self, event, now)
        cancelling.step(self, now)  # after the events: a photo that just ended is kept
        self.watching.step(now)
        if now >= self.scan_due:
            self._scan(now)
        if not self.stopping.requested:
            self._take_work(now)
        facts = self.facts(now)  # ticked while draining too: the gauges must show the stop
        if facts.paused_reason != self.paused:  # `sharpmld status --check` reads it
            self.paused = facts.paused_reason
            write_status(self)
        self.events.step(facts, now)

    def _finish_if_done(self, now: float) -> None:
        """Apart from ``_step``, so that a stop request is honoured even when work raises."""
        if self.stopping.requested:
            in_flight = self.current is not None
            if self.stopping.finished(now, in_flight=in_flight, between_attempts=self.redispatch):
                self.finished = True  # stop() hands back a job still in flight
        elif self.burst and self.current is None and not self.scanner.entries.keys() - self.scanner.stuck:
            self.finished = claiming.nothing_left(self) and (self.cluster is None or self.cluster.idle())

    def heartbeat_lease(self) -> None:
        """Refresh the lease on the job in flight, or raise ``LeaseLost`` if it is not ours."""
        assert self.current is not None
        if not holds(self.current.job.path, self.owner):
            raise LeaseLost(self.current.job.job_id)
        write_lease(self.current.job.path, self.owner, now=self.wall_clock())

    def _take_work(self, now: float) -> None:
        """Claim the next job when idle, or send the job in flight to a new worker."""
        if self.cluster is not None:
            self._take_work_for_cluster(now)
        elif self.current is None:
            self.housekeeping.step(now)
            claimed = claiming.next_job(self, now)
            if claimed is not None:
                self.begin(claimed, now)
        elif self.redispatch and self.supervisor.state == sv.READY:
            self._dispatch(now)

    def _take_work_for_cluster(self, now: float) -> None:
        """Cluster mode: claim and publish whatever is ready, finish what workers committed."""
        assert self.cluster is not None
        self.housekeeping.step(now)
        if not self.paused_reason(now):
            if self.scanned_offline:  # readiness from the slow scans may be a minute old
                self.scan_due = min(self.scan_due, now)
            else:
                self.cluster.claim(self.ready, self.scanner, now)
        self.cluster.step(now)
        if now >= self.next_cluster_status:  # the broker's counts, for `sharpmld status`
            self.next_cluster_status = now + 2.0
            write_status(self)

    def _scan(self, now: float) -> None:
        interval = float(self.config.get("intake", "scan_interval_seconds"))
        self.scanned_offline = self.cluster is not None and not self.cluster.connected
        if self.scanned_offline:
            interval = max(interval, BROKER_DOWN_SCAN)
        self.scan_due = now + interval  # a scan that raises is not retried at once
        started = time.perf_counter()
        self.ready = self.scanner.scan(now)
        self.held.report(self.scanner, self.log)
        note_scan(self, now)
        entries = self.scanner.entries.values()
        self.events.on_scan(
            duration=time.perf_counter() - started,
            waiting=len(self.ready),
            settling=self.scanner.settling,
            oldest_age=max((now - e.first_seen for e in entries), default=0.0),
            stuck=Counter(self.scanner.stuck.values()),
            inbox_bytes=self.scanner.bytes_seen,
        )
        due = self.scanner.next_due()
        self.scan_due = min(now + interval, due) if due is not None else now + interval

    def facts(self, now: float) -> DaemonFacts:
        """The daemon as observers see it: no reference to the daemon itself leaves here."""
        return DaemonFacts(
            paused_reason=self.paused_reason(now),
            worker_memory_bytes=self.supervisor.memory_bytes(),
            watcher_restarts=self.watcher.restarts,
            accelerator_bytes=self.supervisor.info.accelerator_bytes,
        )

    def paused_reason(self, now: float) -> str:
        """Why no job would be claimed now ("" when intake is open)."""
        reason = claiming.paused_reason(self, now)
        if not reason and self.cluster is not None and not self.cluster.connected:
            reason = "broker_unavailable"
        return reason

    # -- a job's passage ---------------------------------------------------------------------

    def begin(self, claimed: claiming.Claimed, now: float) -> None:
        """Prepare a job this daemon now owns and hand it to the worker (or close it)."""
        job: Job = claimed.job
        run = JobRun(job, self.layout, self.config, engine_info(self), owner=self.owner)
        self.current = run
        self.next_heartbeat = now + self.heartbeat  # the claim (or adoption) wrote the lease
        self.events.on_claimed(run, settle_wait=claimed.settle_wait, queue_wait=claimed.queue_wait)
        if run.refuse_if_exhausted():
            self.closed(run, now)
            return
        started = time.perf_counter()
        if run.prepare() is None:
            self.closed(run, now)
            return
        self.events.on_dispatched(run, validation=time.perf_counter() - started)
        self._dispatch(now)

    def _dispatch(self, now: float) -> None:
        run = self.current
        assert run is not None and run.request is not None
        self.redispatch = False
        give_job_folder(run.job.path, str(self.config.get("worker", "user")))
        run.begin_attempt()
        self.supervisor.send_job(run.request, now)
        write_status(self)

    def closed(self, run: JobRun, now: float) -> None:
        """The job left this daemon's hands (done, failed or handed back)."""
        self.events.on_finished(run, run.outcome)
        if run.outcome == OUTCOME_HANDED_BACK:
            self.housekeeping.disk_filled_up(now)
        self.current = None
        self.redispatch = False
        write_status(self)
