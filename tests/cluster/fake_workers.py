"""A stand-in for a cluster worker, for the intake's tests: fetch, write an attempt, commit, ack.

The real worker (``sharpmld worker --cluster``) runs the model; this one writes small fake
outputs where a worker's attempt has them, so the intake's publishing, gathering and closing
are tested on their own. It reads a task as the real worker does: the photo at
``<root>/<job_dir>/<photo>``, outputs named by ``output_stem(photo)``, only the request's own
settings in ``options``; it leaves ``RESULT.json`` or ``FAILED.json`` with ``made_by``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sharpmld.cluster.broker import Broker, Delivery, Settings
from sharpmld.cluster.commit import Attempt
from sharpmld.cluster.task import PhotoTask
from sharpmld.daemon.stems import output_stem
from sharpmld.protocol import CONFIG_FIELDS

WAIT = 10.0


@dataclass
class Done:
    """What the stand-in did with one delivery."""

    task: PhotoTask
    delivered: int
    won: bool


@dataclass
class StandIn:
    """One fake worker on ``host`` reading ``root`` as its mount of the shared folder."""

    root: Path
    url: str
    host: str = "hostA"
    pid: int = 4242
    done: list[Done] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.broker = Broker(Settings(self.url, ack_wait=1.0, max_deliver=2))
        self.broker.start().result(WAIT)

    def stop(self) -> None:
        self.broker.stop()

    def fetch(self, timeout: float = 0.3) -> tuple[Delivery, PhotoTask] | None:
        got = self.broker.fetch(timeout).result(WAIT + timeout)
        if got is None:
            return None
        return got, PhotoTask.from_bytes(got.data)

    def work_one(self, *, fail: str = "", timeout: float = 0.3) -> Done | None:
        """Make one photo (or commit its failure with code ``fail``); None when none came."""
        fetched = self.fetch(timeout)
        if fetched is None:
            return None
        delivery, task = fetched
        original = self.root / task.job_dir / task.photo
        assert original.is_file(), f"the task names no readable original: {original}"
        unknown = set(task.options) - {*CONFIG_FIELDS, "f_px"}
        assert not unknown, f"options a worker refuses: {unknown}"
        name = f"{self.host}.{self.pid}.{delivery.delivered}"
        attempt = Attempt(self.root / task.job_dir, task.photo, name)
        folder = attempt.open()
        stem = output_stem(task.photo, set())
        made_by = {"host_id": self.host, "host": f"{self.host}.local", "pid": self.pid, "device": "cpu"}
        if fail:
            failure = {"code": fail, "message": "it would not decode", "made_by": made_by}
            (folder / "FAILED.json").write_text(json.dumps(failure))
        else:
            (folder / f"{stem}.ply").write_bytes(b"ply " + original.read_bytes()[:16])
            (folder / "images").mkdir()
            (folder / "images" / f"{stem}.png").write_bytes(b"png")
            entry = {
                "source": task.photo,
                "made_by": made_by,
                "gaussians": 7,
                "outputs": {
                    "ply": {"path": f"{stem}.ply", "bytes": 20},
                    "image": {"path": f"images/{stem}.png", "bytes": 3},
                },
            }
            (folder / "RESULT.json").write_text(json.dumps(entry))
        won = attempt.commit()
        delivery.ack().result(WAIT)
        done = Done(task, delivery.delivered, won)
        self.done.append(done)
        return done

    def hold(self, timeout: float = 0.3) -> PhotoTask | None:
        """Take a photo and never answer for it (a worker that died on it)."""
        fetched = self.fetch(timeout)
        return None if fetched is None else fetched[1]
