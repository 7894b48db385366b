"""The cluster worker's loop: take a photo, have the warm model make it, commit, then ack.

The same lifecycle as the daemon: ``start(now)``, ``step(now)`` (never blocks: every broker
call is a future looked at in a later step, the model worker is stepped through its
supervisor), ``stop()``; ``run()`` is the only place that waits, and a finished broker call
or a signal ends that wait at once.

The commit decides, not the ack. An attempt that loses the commit (its photo was redelivered
while this worker was paused, or cut off, and another worker committed first) removes its own
files and does nothing else. A model worker that dies on a photo gets no ack: the photo is
handed back and the broker's ``max_deliver`` bounds how often it can kill one. The first
TERM hands the held photo back at once (nak), stops the model and ends the process with 0.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sharpmld.cluster.broker import Broker, Delivery, Settings
from sharpmld.cluster.commit import Attempt, committed
from sharpmld.cluster.task import BadTask, PhotoTask
from sharpmld.clusterworker import records
from sharpmld.clusterworker.held import Held
from sharpmld.clusterworker.request import photo_request
from sharpmld.clusterworker.status import WorkerStatus, remove_status, write_status
from sharpmld.core import log
from sharpmld.core.config import Config
from sharpmld.core.errors import ConfigError, DiskFull, EngineCrash
from sharpmld.core.hostid import host_id
from sharpmld.daemon.stopping import StopPolicy
from sharpmld.daemon.targets import remove_target, worker_target_name, write_target
from sharpmld.daemon.waiting import Waiter
from sharpmld.observers.worker_metrics import WorkerMetrics
from sharpmld.protocol import (
    ImageDone,
    ImageFailed,
    JobDone,
    SupervisorEvent,
    WorkerLost,
    WorkerReady,
    WorkerRecycled,
    WorkerUnavailable,
)
from sharpmld.queue.cluster_workers import REFRESH_SECONDS
from sharpmld.queue.layout import Layout
from sharpmld.supervisor import supervisor as sv
from sharpmld.supervisor.spawn import give_job_folder

T = TypeVar("T")
FETCH_SECONDS = 1.0  # one fetch waits this long on the broker for a photo
MAX_WAIT = 1.0
BUSY_WAIT = 0.25  # while the model starts or works: notice its events soon
CONNECT_RETRY = 2.0  # seconds between tries to reach a broker that refused us
STOP_GRACE = 2.0  # at stop, a busy model worker gets this long between TERM and KILL
ANSWER_WAIT = 5.0  # at stop, how long the nak may take to reach the broker
STATUS_REFRESH = REFRESH_SECONDS  # an idle worker's status file is rewritten this often: it is alive
WARM_STATES = (sv.READY, sv.BUSY)


class ClusterWorker:
    """One model, warm, taking photos from the broker for as long as it runs.

    ``broker_factory`` and ``supervisor`` may be given (tests pass their own); by default
    the worker makes the real ones. With ``[metrics] enabled``, it serves its own
    ``/metrics`` on ``metrics_host`` (default ``[metrics] host``) and ``metrics_port``
    (default 0, a free port: the intake's daemon may hold ``[metrics] port`` on this host),
    announced in its status file and in a discovery file for Prometheus.
    """

    def __init__(
        self,
        config: Config,
        url: str,
        *,
        broker_factory: Callable[[Settings], Broker] = Broker,
        supervisor: Any = None,
        waiter: Waiter | None = None,
        wall_clock: Callable[[], float] = time.time,
        machine_id: str | None = None,
        metrics_host: str | None = None,
        metrics_port: int = 0,
    ) -> None:
        self.config = config
        self.layout = Layout(config.root)
        self.settings = Settings(
            url,
            ack_wait=float(config.get("cluster", "ack_wait_seconds")),
            max_deliver=int(config.get("cluster", "max_deliver")),
            define=False,  # the intake's stream and consumers, as the intake set them up
        )
        self.heartbeat_interval = self.settings.ack_wait / 3  # until the broker says its own
        self.wall_clock = wall_clock
        self.host_id = machine_id or host_id()
        self.pid = os.getpid()
        self.log = log.get().bind(host_id=self.host_id)
        self.supervisor = supervisor if supervisor is not None else sv.Supervisor(config)
        self.waiter = waiter or Waiter()
        self.stopping = StopPolicy(0.0, self.log)
        self.status = WorkerStatus(self.host_id, url, started=wall_clock())
        self.metrics: WorkerMetrics | None = None
        if config.get("metrics", "enabled"):
            self.metrics = WorkerMetrics(self.status.host)
        self.metrics_address = (metrics_host or str(config.get("metrics", "host")), metrics_port)
        self._broker_factory = broker_factory
        self.broker: Broker | None = None
        self.connecting: Future[None] | None = None
        self.next_connect = 0.0
        self.fetching: Future[Delivery | None] | None = None
        self.held: Held | None = None
        self.finished = False
        self.next_status = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def run(self, clock: Callable[[], float] = time.monotonic) -> int:
        """Run until a TERM or INT; returns the process exit code. The only loop that waits."""
        self.waiter.open()
        self.stopping.install(self.waiter.signal_fd)
        try:
            self.start(clock())
            try:
                while not self.finished:
                    self.waiter.wait(self.timeout(), self.supervisor.fileno())
                    self.step(clock())
            finally:
                self.stop()
        finally:
            self.stopping.uninstall()
            self.waiter.close()
        return 0

    def start(self, now: float) -> None:
        """Check the shared root is there, warm the model, and connect to the broker."""
        if not self.layout.working.is_dir():
            raise ConfigError(
                f"{self.layout.working} does not exist: is the shared folder mounted at "
                f"{self.config.root}? Pass the root as this host mounts it (--root)"
            )
        self.layout.state_dir.mkdir(exist_ok=True)
        self._serve_metrics()
        self.supervisor.start(now)
        self._connect(now)
        self.log.info(
            "cluster worker started", root=str(self.config.root), broker=self.settings.url, pid=self.pid
        )
        self._write_status()

    def stop(self) -> None:
        """Hand back the photo in hand at once, stop the model, close the broker connection."""
        held, self.held = self.held, None
        answers: list[Future[None]] = []
        handing_back = held is not None and held.answer is None  # not yet committed nor lost
        if held is not None and handing_back:
            answers.append(held.delivery.nak())  # first: another worker can start on it now
            self._count("handed_back")
            self.log.info("stopping: photo handed back", **held.describe())
        self.supervisor.stop(grace=STOP_GRACE)
        if held is not None and handing_back:
            held.attempt.discard()  # after the model is gone: nothing writes into it any more
        if self.fetching is not None:  # a photo may still arrive for the fetch under way
            late = _quietly(self.fetching, FETCH_SECONDS + ANSWER_WAIT)
            if late is not None:
                answers.append(late.nak())
        for answer in answers + ([held.answer] if held is not None and held.answer else []):
            _quietly(answer, ANSWER_WAIT)
        if self.broker is not None:
            self.broker.stop()
        remove_status(self.layout.state_dir, self.status)
        if self.metrics is not None:
            self.metrics.stop()
            remove_target(self.layout.state_dir, worker_target_name(self.host_id, self.pid))
        self.log.info("cluster worker stopped", photos_done=self.status.photos_done)

    def timeout(self) -> float:
        """How long ``run`` may wait before the next step is due."""
        if self.held is not None or self.supervisor.state in (sv.BUSY, sv.STARTING, sv.STOPPING):
            return BUSY_WAIT
        return MAX_WAIT

    # -- one iteration -----------------------------------------------------------------------

    def step(self, now: float) -> None:
        """One iteration at time ``now``; returns at once when nothing is due."""
        if self.finished:
            return
        if self.stopping.requested:
            self.finished = True  # stop() hands the photo back
            return
        try:
            self._step(now)
        except Exception:  # a bug must cost a step, never the worker: the photo stays held
            self.log.error("cluster worker step failed", exc_info=True)

    def _step(self, now: float) -> None:
        for event in self.supervisor.step(now):
            self._on_model(event, now)
        self._step_broker(now)
        if now >= self.next_status:
            self._write_status()
            self.next_status = now + min(STATUS_REFRESH, self.heartbeat_interval)

    def _step_broker(self, now: float) -> None:
        if self.connecting is not None:
            if not self.connecting.done():
                return
            self._connected(self.connecting, now)
        if self.broker is None:
            if now >= self.next_connect:
                self._connect(now)
            return
        if self.broker.connected != self.status.connected:  # nats-py reconnects by itself
            self.status.connected = self.broker.connected
            self.log.info("broker connection", connected=self.status.connected, broker=self.settings.url)
            self._write_status()
        if self.fetching is not None and self.fetching.done():
            fetched, self.fetching = self.fetching, None
            try:
                delivery = fetched.result()
            except Exception as exc:  # the broker away: it reconnects by itself
                self.log.warning(
                    "could not fetch a photo from the broker", reason=str(exc) or type(exc).__name__
                )
                delivery = None
            if delivery is not None:
                self._take(delivery, now)
        held = self.held
        if held is not None:
            if held.heartbeat_due(now):
                held.beat(now)
                self.status.last_heartbeat = self.wall_clock()
                self._write_status()
            if held.answer is not None and held.answer.done():
                self._let_go(held)
        if self.held is None and self.fetching is None and self.supervisor.state == sv.READY:
            self.fetching = self._watch(self.broker.fetch(FETCH_SECONDS))

    def _connect(self, now: float) -> None:
        self.broker = self._broker_factory(self.settings)
        self.connecting = self._watch(self.broker.start())

    def _connected(self, attempt: Future[None], now: float) -> None:
        self.connecting = None
        exc = attempt.exception()
        if exc is None:
            assert self.broker is not None
            self.status.connected = True
            self.heartbeat_interval = self.broker.ack_wait / 3  # well inside the server's ack_wait
            self.log.info("connected to the broker", broker=self.settings.url, ack_wait=self.broker.ack_wait)
            self._write_status()
            return
        self.log.warning(
            "cannot reach the broker; trying again",
            broker=self.settings.url,
            reason=str(exc) or type(exc).__name__,
            retry_seconds=CONNECT_RETRY,
        )
        assert self.broker is not None
        self.broker.stop()
        self.broker = None
        self.next_connect = now + CONNECT_RETRY

    # -- a photo's passage -------------------------------------------------------------------

    def _take(self, delivery: Delivery, now: float) -> None:
        """A photo arrived: start the model on it, or answer the broker at once."""
        if self.held is not None or self.supervisor.state != sv.READY:
            delivery.nak()  # the model went away while the fetch was under way
            self._count("handed_back")
            return
        try:
            task = PhotoTask.from_bytes(delivery.data)
            job_dir = self.config.root / task.job_dir
            attempt = Attempt(job_dir, task.photo, f"{self.host_id}.{self.pid}.{delivery.delivered}")
            request = photo_request(self.config, task, attempt.folder)
        except BadTask as exc:
            self.log.warning("photo task refused", msg_id=delivery.msg_id, reason=str(exc))
            delivery.term()
            return
        where = {"job_id": task.job_id, "photo": task.photo, "delivered": delivery.delivered}
        if not self.layout.working.is_dir():
            self.log.warning("the shared root is not reachable; photo handed back", **where)
            delivery.nak()
            self._count("handed_back")
            return
        if not job_dir.is_dir():
            self.log.warning("the photo's job is no longer in working/; photo dropped", **where)
            delivery.term()
            return
        if committed(job_dir, task.photo) is not None:
            self.log.info("photo already committed by another attempt", **where)
            delivery.ack()
            return
        try:
            attempt.open()
            give_job_folder(attempt.folder, str(self.config.get("worker", "user")))
        except OSError as exc:
            self.log.warning("cannot open the attempt folder; photo handed back", reason=str(exc), **where)
            delivery.nak()
            self._count("handed_back")
            return
        self.held = Held(delivery, task, attempt, since=now, interval=self.heartbeat_interval)
        if self._given_up(self.held):
            return
        self.supervisor.send_job(request, now)
        self.log.info("photo started", attempt=attempt.name, published=delivery.published, **where)
        self.status.current_photo = {**self.held.describe(), "since": self.wall_clock()}
        self._write_status()

    def _on_model(self, event: SupervisorEvent, now: float) -> None:
        held = self.held
        if self.metrics is not None:
            if isinstance(event, WorkerReady | WorkerUnavailable | WorkerLost | WorkerRecycled):
                self.metrics.model.on_worker(event)
            elif isinstance(event, ImageDone | ImageFailed):
                self.metrics.model.on_image(event)
        if isinstance(event, WorkerReady):
            self.status.device = event.device
            self.log.info("model warm", device=event.device, load_seconds=event.load_seconds)
        elif isinstance(event, WorkerUnavailable):
            self.log.warning("model unavailable", reason=event.message)
        elif isinstance(event, ImageDone) and held is not None:
            held.entry = {"source": event.rel, "sha256": event.sha256, **event.result}
        elif isinstance(event, ImageFailed) and held is not None:
            held.failure = (event.code, event.message)
        elif isinstance(event, JobDone) and held is not None:
            self._finish(held)
        elif isinstance(event, WorkerLost) and held is not None and held.answer is None:
            self.log.warning(
                "the model worker was lost on the photo; handed back",
                reason=event.reason,
                detail=event.detail,
                **held.describe(),
            )
            self._record_lost(held, event)
            held.answer = self._watch(held.delivery.nak())
            self._count("lost")
        self._write_status()

    def _record_lost(self, held: Held, event: WorkerLost) -> None:
        """Outputs gone, the reason kept: the photo is charged this attempt (``records``)."""
        try:
            held.attempt.open()  # reported once reaped: nothing writes into it any more
            records.write_lost(
                held.attempt.folder, event.reason, event.exit or event.detail, self._made_by(held)
            )
        except OSError as exc:
            self.log.warning("cannot record the lost attempt", reason=str(exc), **held.describe())

    def _given_up(self, held: Held) -> bool:
        """A photo that has killed ``max_deliver`` model workers is not run again: its failure
        is committed instead, naming how the workers died. True when it was."""
        lost = records.charged(held.attempt.folder.parent, held.attempt.name)
        if len(lost) < self.settings.max_deliver:
            return False
        how = "; ".join(sorted({str(x.get("detail") or "its worker vanished") for x in lost}))
        error = EngineCrash(
            f"the photo stopped the model worker {len(lost)} times ({how}); it is not run again"
        )
        held.failure = (error.code, error.message)
        self.log.warning("photo given up after killing its workers", charged=len(lost), **held.describe())
        self._finish(held)
        return True

    def _finish(self, held: Held) -> None:
        """The model worker is done with the photo: record, commit, and ack only if it won."""
        if held.answer is not None:
            return
        if held.failure is not None and held.failure[0] == DiskFull.code:
            self.log.warning("disk full while writing the photo's outputs; handed back", **held.describe())
            held.attempt.discard()
            held.answer = self._watch(held.delivery.nak())
            self._count("handed_back")
            return
        made_by = self._made_by(held)
        try:
            if held.entry is not None:
                records.write_result(held.attempt.folder, held.entry, made_by)
            else:
                code, message = held.failure or (
                    "internal_error",
                    "the model worker said nothing of the photo",
                )
                records.write_failure(held.attempt.folder, code, message, made_by)
            won = held.attempt.commit()
        except OSError as exc:
            self.log.warning("cannot commit the photo; handed back", reason=str(exc), **held.describe())
            held.attempt.discard()
            held.answer = self._watch(held.delivery.nak())
            self._count("handed_back")
            return
        if not won:
            self.log.info(
                "commit lost: another attempt committed the photo first; files removed", **held.describe()
            )
            self._count("commit_lost")
            self._let_go(held)
            return
        if self.broker is not None:  # a hint for the intake's finisher; the COMMIT decides
            self.broker.notify_commit(held.task.job_id, held.task.photo)
        held.answer = self._watch(held.delivery.ack())
        self.status.photos_done += 1
        outcome = "done" if held.entry is not None else "failed"
        self._count(outcome)
        self.log.info("photo committed", outcome=outcome, **held.describe())

    def _made_by(self, held: Held) -> dict[str, Any]:
        return {
            "host_id": self.host_id,
            "host": self.status.host,
            "pid": self.pid,
            "device": self.status.device,
            **held.describe(),
        }

    def _let_go(self, held: Held) -> None:
        """The broker has this worker's answer (or there is none to give): hold nothing now."""
        if held.answer is not None and (exc := held.answer.exception()) is not None:
            self.log.warning(
                "the broker did not take the answer; the photo will come back",
                reason=str(exc) or type(exc).__name__,
                **held.describe(),
            )
        self.held = None
        self.status.current_photo = None
        self._write_status()

    # -- helpers -----------------------------------------------------------------------------

    def _serve_metrics(self) -> None:
        """Serve ``/metrics`` and say where: the status file and Prometheus's discovery file."""
        if self.metrics is None:
            return
        host, port = self.metrics_address
        self.status.metrics_port = self.metrics.serve(host, port)
        write_target(
            self.layout.state_dir,
            host,
            self.status.metrics_port,
            root=self.config.root,
            name=worker_target_name(self.host_id, self.pid),
            labels={"role": "worker", "host_id": self.host_id, "root": str(self.config.root)},
        )
        self.log.info("serving metrics", url=f"http://{host}:{self.status.metrics_port}/metrics")

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.photos.labels(outcome=outcome).inc()

    def _watch(self, future: Future[T]) -> Future[T]:
        """End the loop's wait as soon as the broker has answered."""
        future.add_done_callback(lambda _f: self.waiter.poke())
        return future

    def _write_status(self) -> None:
        if self.metrics is not None:
            self.metrics.connected.set(1 if self.status.connected else 0)
            self.metrics.holding.set(0 if self.held is None else 1)
            model = self.supervisor
            self.metrics.model.on_memory(model.memory_bytes(), model.info.accelerator_bytes)
        state = self.supervisor.state
        self.status.model = state
        self.status.model_warm = state in WARM_STATES
        self.status.model_message = self.supervisor.unavailable_reason
        write_status(self.layout.state_dir, self.status, self.wall_clock())


def _quietly(future: Future[T], timeout: float) -> T | None:
    """The result, or None when the broker failed or took too long (at stop only)."""
    try:
        return future.result(timeout)
    except Exception:
        return None
