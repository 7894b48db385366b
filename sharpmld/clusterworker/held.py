"""The one photo a cluster worker holds: its delivery, its attempt, and what became of it.

A worker holds at most one photo at a time (fetching more would let them wait out their
``ack_wait`` behind the one the model is on). The photo is held from its delivery until the
broker has the worker's answer (ack or nak) or the commit was lost; heartbeats are due every
``interval`` seconds while it is held.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from sharpmld.cluster.broker import Delivery
from sharpmld.cluster.commit import Attempt
from sharpmld.cluster.task import PhotoTask


@dataclass
class Held:
    """A photo in this worker's hands."""

    delivery: Delivery
    task: PhotoTask
    attempt: Attempt
    since: float  # the loop's clock at delivery
    interval: float  # seconds between in_progress() heartbeats
    next_heartbeat: float = 0.0
    entry: dict[str, Any] | None = None  # the model worker's result for the photo
    failure: tuple[str, str] | None = None  # (code, message) when the photo itself failed
    answer: Future[None] | None = None  # the ack or nak sent; the photo is let go once done

    def __post_init__(self) -> None:
        self.next_heartbeat = self.since + self.interval

    def heartbeat_due(self, now: float) -> bool:
        return self.answer is None and now >= self.next_heartbeat

    def beat(self, now: float) -> Future[None]:
        """Send in_progress(): the broker's ack deadline starts again."""
        self.next_heartbeat = now + self.interval
        return self.delivery.in_progress()

    def describe(self) -> dict[str, Any]:
        """What the status file says about the photo."""
        return {
            "job": self.task.job_id,
            "photo": self.task.photo,
            "attempt": self.attempt.name,
            "delivered": self.delivery.delivered,
        }
