"""Stopping a worker as a state with deadlines: TERM at t0, KILL at t0 + grace, then reap.

A ``Stopping`` is the plan for one stop; ``advance`` is called on every step of the
supervisor, sends whatever signal has come due and says whether the worker is gone. It never
waits, so the daemon keeps serving its inbox, heartbeats and signals while a worker dies.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass

from sharpmld.supervisor.procs import Child

KILL_GRACE = 3.0  # after TERM, this long before KILL
EXIT_GRACE = 2.0  # a worker that closed its events pipe gets this long to exit before KILL
REAP_SECONDS = 10.0  # after KILL, give up waiting for an unkillable process after this
RECYCLE_GRACE = 10.0  # an idle worker asked to stop may take this long before TERM

# Why a worker is being stopped; decides what happens once it is gone.
LOST = "lost"  # crashed, timed out, over memory: a ``worker_lost`` event, then backoff
RECYCLE = "recycle"  # quota reached: restart at once
UNAVAIL = "unavailable"  # the engine cannot load: wait ``engine_retry_seconds``
SHUTDOWN = "stop"  # ``Supervisor.stop()``: stay stopped


@dataclass
class Stopping:
    """A stop in progress: its cause, what to report, and the deadlines still ahead."""

    cause: str
    give_up_at: float = 0.0
    term_at: float | None = None
    kill_at: float | None = None
    reason: str = ""  # worker_lost reason: crash | timeout | memory
    detail: str = ""
    busy: bool = False  # a job was in flight
    starting: bool = False  # died while loading the model

    def schedule(self, now: float, *, asked: bool, grace: float) -> None:
        """Set the deadlines. ``asked``: the idle worker was asked to exit, so TERM only after
        ``grace`` and KILL ``KILL_GRACE`` later; otherwise TERM now and KILL after ``grace``."""
        if asked:
            self.term_at, self.kill_at = now + grace, now + grace + KILL_GRACE
        else:
            self.term_at, self.kill_at = now, now + grace
        self.give_up_at = self.kill_at + REAP_SECONDS

    def on_eof(self, now: float) -> None:
        """The worker closed its events pipe: it is exiting; KILL it if it dawdles."""
        self.term_at, self.kill_at = None, now + EXIT_GRACE
        self.give_up_at = self.kill_at + REAP_SECONDS

    def hurry(self, now: float, grace: float) -> None:
        """Bring the deadlines forward (the daemon is exiting and gives ``grace``)."""
        if self.term_at is not None:
            self.term_at = min(self.term_at, now + grace)
        if self.kill_at is not None:
            self.kill_at = min(self.kill_at, now + grace + (KILL_GRACE if self.term_at is not None else 0.0))
            self.give_up_at = min(self.give_up_at, self.kill_at + REAP_SECONDS)

    def advance(
        self, child: Child, now: float, signal_group: Callable[[int, int], bool]
    ) -> tuple[bool, int | None]:
        """Send what is due; (True, exit status) once the worker is gone or given up on.

        ``signal_group`` returning False (ESRCH) means no process is left in the group.
        """
        code = child.poll()
        if code is not None:
            return True, code
        gone = False
        if self.term_at is not None and now >= self.term_at:
            self.term_at = None
            gone = not signal_group(child.pid, signal.SIGTERM)
        if self.kill_at is not None and now >= self.kill_at:
            self.kill_at = None
            gone = not signal_group(child.pid, signal.SIGKILL) or gone
        code = child.poll()
        return code is not None or gone or now >= self.give_up_at, code
