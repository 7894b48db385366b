"""A broker whose answers the test hands out, and a cluster worker stepped on a fake clock.

``FakeBroker`` has the public methods the cluster worker calls on a ``Broker`` (``start``,
``fetch``, ``notify_commit``, ``stop``); each fetch returns a future the test resolves with a photo, and every
``FakeDelivery`` records which of its verbs were called. The model worker is the daemon
tests' ``FakeWorker``. Time is what the test passes to ``step(now)``.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from sharpmld.cluster.broker import Settings
from sharpmld.cluster.task import PhotoTask
from sharpmld.clusterworker.loop import ClusterWorker
from sharpmld.core import config
from sharpmld.protocol import SupervisorEvent
from tests.daemon.fakes import FakeWorker
from tests.intake import corpus

ACK_WAIT = 30.0


def done(value: Any = None) -> Future[Any]:
    f: Future[Any] = Future()
    f.set_result(value)
    return f


class FakeDelivery:
    """One photo as the broker hands it out; ``verbs`` lists what the worker said about it."""

    def __init__(self, data: bytes, delivered: int = 1, msg_id: str = "job/photo") -> None:
        self.data, self.delivered, self.msg_id, self.subject = data, delivered, msg_id, "sharpmld.jobs.normal"
        self.published = 0.0
        self.verbs: list[str] = []
        self.answered = True  # False: the broker's answers stay under way

    def _say(self, verb: str) -> Future[None]:
        self.verbs.append(verb)
        return done() if self.answered else Future()

    def in_progress(self) -> Future[None]:
        return self._say("in_progress")

    def ack(self) -> Future[None]:
        return self._say("ack")

    def nak(self) -> Future[None]:
        return self._say("nak")

    def term(self) -> Future[None]:
        return self._say("term")


class FakeBroker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ack_wait = settings.ack_wait
        self.fetches: list[Future[Any]] = []
        self.notices: list[tuple[str, str]] = []  # (job id, photo) of each commit notice sent
        self.stopped = False
        self.connected = True  # the real one's property: the connection is up now

    def start(self) -> Future[None]:
        return done()

    def fetch(self, timeout: float) -> Future[Any]:
        self.fetches.append(Future())
        return self.fetches[-1]

    def notify_commit(self, job_id: str, photo: str) -> Future[None]:
        self.notices.append((job_id, photo))
        return done()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopped = True


class SteppedWorker(FakeWorker):
    """The daemon tests' fake model worker, with the supervisor's ``step``."""

    def step(self, now: float) -> list[SupervisorEvent]:
        return self.read_events(now) + self.check(now)


@dataclass
class Rig:
    root: Path
    worker: ClusterWorker
    model: SteppedWorker
    brokers: list[FakeBroker] = field(default_factory=list)
    now: float = 1000.0

    @property
    def broker(self) -> FakeBroker:
        return self.brokers[-1]

    def step(self, seconds: float = 0.0) -> None:
        self.now += seconds
        self.worker.step(self.now)

    def job(self, photos: int = 1, name: str = "job-1") -> Path:
        job = self.root / "working" / name
        job.mkdir(parents=True)
        for n in range(photos):
            corpus.write_png(job / f"img{n}.png")
        return job

    def hand_out(self, data: bytes, delivered: int = 1) -> FakeDelivery:
        """Answer the fetch under way with one photo, and let the worker take it."""
        pending = [f for f in self.broker.fetches if not f.done()]
        assert pending, "the worker is not fetching"
        delivery = FakeDelivery(data, delivered)
        pending[-1].set_result(delivery)
        self.step()
        return delivery

    def task(self, job: Path, photo: str = "img0.png", **options: Any) -> bytes:
        return PhotoTask(job.name, photo, f"working/{job.name}", options or {"formats": ["ply"]}).to_bytes()


def make_rig(tmp_path: Path, *, metrics: bool = False, **cluster: Any) -> Rig:
    """A started worker; with ``metrics``, it serves /metrics on a free loopback port."""
    root = tmp_path / "root"
    for state in ("inbox", "working", "done", "failed"):
        (root / state).mkdir(parents=True)
    data = {
        "metrics": {"enabled": metrics, "host": "127.0.0.1"},
        "cluster": {"ack_wait_seconds": ACK_WAIT, **cluster},
    }
    (root / config.CONFIG_NAME).write_text(tomli_w.dumps(data))
    cfg = config.load(root=root, environ={})
    model = SteppedWorker()
    brokers: list[FakeBroker] = []

    def factory(settings: Settings) -> Any:
        brokers.append(FakeBroker(settings))
        return brokers[-1]

    worker = ClusterWorker(cfg, "nats://fake", broker_factory=factory, supervisor=model, machine_id="host1")
    rig = Rig(root, worker, model, brokers)
    worker.start(rig.now)
    return rig
