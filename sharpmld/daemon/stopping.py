"""When the daemon stops: the first TERM (or INT) drains, a second one stops now.

Signal handlers only count requests; the loop reads the count in ``step(now)`` and decides.
The drain ends when no job is in flight, when the job is between attempts (its worker was
lost and it waits for a new one), or when the grace has run out; ``Daemon.stop`` then hands
back whatever is still in flight.
"""

from __future__ import annotations

import signal
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopPolicy:
    """Counts stop requests and says when draining is over."""

    def __init__(self, grace: float, log: Any) -> None:
        self.grace = grace
        self.log = log
        self.requests = 0
        self.deadline: float | None = None
        self._previous: dict[int, Any] = {}

    # -- signals (flags only) ----------------------------------------------------------------

    def install(self, wakeup_fd: int) -> None:
        """Route TERM and INT here, and let them end the loop's wait through ``wakeup_fd``."""
        signal.set_wakeup_fd(wakeup_fd, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        signal.set_wakeup_fd(-1)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.request()

    def request(self) -> None:
        """Ask the daemon to stop (a second call: stop now, do not wait for the job)."""
        self.requests += 1

    # -- the loop's side ---------------------------------------------------------------------

    @property
    def requested(self) -> bool:
        return self.requests > 0

    def step(self, now: float) -> None:
        """Start the grace period at the first step that sees a request (said once)."""
        if self.requests and self.deadline is None:
            self.deadline = now + self.grace
            self.log.info("stopping: no new jobs; finishing the one in flight", grace_seconds=self.grace)

    def finished(self, now: float, *, in_flight: bool, between_attempts: bool) -> bool:
        """Whether the drain is over (always False before any request)."""
        if not self.requests:
            return False
        force = self.requests > 1 or (self.deadline is not None and now >= self.deadline)
        return force or not in_flight or between_attempts
