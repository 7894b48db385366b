"""Photos the broker forgot: published and recorded, never committed, and no longer stored.

A broker whose store was lost (a disk replaced, a container recreated without its volume)
comes back empty, and the workers would never see the photos of jobs still in ``working/``.
At start, after every reconnection and every few minutes, each published photo without a
``COMMIT`` is looked up at its stream sequence; one that is not there (or another photo is,
as a reset server numbers from 1 again) is published again. Asking about a photo that was
committed and acked in the meantime is harmless: its re-publish is a duplicate the broker
drops by message id, and a late second run would lose the commit.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Protocol

from sharpmld.cluster.intake_broker import IntakeBroker

RECONCILE_SECONDS = 300.0
MAX_LOOKUPS = 256  # look-ups in flight at once; the rest wait for the next round


class Holder(Protocol):
    """What the reconciler needs of the intake."""

    @property
    def broker(self) -> IntakeBroker: ...

    def unsettled(self) -> list[tuple[str, str, int, str]]: ...
    def lost(self, job_id: str, photo: str) -> None: ...


class Reconciler:
    """Now and then, asks the broker about every unsettled photo; reports the missing ones."""

    def __init__(self, interval: float = RECONCILE_SECONDS) -> None:
        self.interval = interval
        self.next_round = 0.0
        self.lookups: dict[tuple[str, str], Future[bool]] = {}
        self.rounds = 0

    def due_now(self) -> None:
        """Check at the next step (at start, after a reconnection)."""
        self.next_round = 0.0

    def step(self, intake: Holder, now: float) -> None:
        for key, future in list(self.lookups.items()):
            if not future.done():
                continue
            del self.lookups[key]
            try:
                held = future.result()
            except Exception:
                continue  # asked again next round
            if not held:
                intake.lost(*key)
        if now < self.next_round or self.lookups:
            return
        self.next_round = now + self.interval
        self.rounds += 1
        broker = intake.broker
        for job_id, photo, sequence, msg_id in intake.unsettled()[:MAX_LOOKUPS]:
            if sequence <= 0:
                intake.lost(job_id, photo)
                continue
            self.lookups[(job_id, photo)] = broker.holds(sequence, msg_id)
