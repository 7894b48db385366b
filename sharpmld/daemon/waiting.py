"""The daemon's only blocking call: wait, bounded, for the worker or a wake-up.

Kept apart from the loop so the loop's ``step(now)`` never blocks: ``Daemon.run`` alternates
``wait(timeout)`` and ``step(clock())``, and a test steps the daemon without ever calling
this. A self-pipe carries wake-ups from the inbox watcher's thread and from signals (through
``signal.set_wakeup_fd``), so a TERM ends the wait at once.
"""

from __future__ import annotations

import contextlib
import os
import select

WAKE = b"w"
NUDGE = b"n"  # not a signal number (those are below 65), not a reason to rescan the inbox


class Waiter:
    """A self-pipe and a ``select`` on it plus the worker's event pipe."""

    def __init__(self) -> None:
        self._r, self._w = -1, -1

    def open(self) -> None:
        """Create the pipe (non-blocking at both ends, so a full pipe never stalls a writer)."""
        self._r, self._w = os.pipe()
        for fd in (self._r, self._w):
            os.set_blocking(fd, False)

    @property
    def signal_fd(self) -> int:
        """The end that ``signal.set_wakeup_fd`` writes to (-1 before ``open``)."""
        return self._w

    def poke(self) -> None:
        """Wake the wait for an inbox rescan; safe from any thread, a no-op before ``open``."""
        if self._w < 0:
            return
        with contextlib.suppress(OSError):
            os.write(self._w, WAKE)

    def nudge(self) -> None:
        """End the wait without asking for a rescan (the broker has news); any thread."""
        if self._w < 0:
            return
        with contextlib.suppress(OSError):
            os.write(self._w, NUDGE)

    def wait(self, timeout: float, worker_fd: int | None) -> bool:
        """Block at most ``timeout`` seconds; True when a poke (not only a signal) arrived."""
        fds = [fd for fd in (self._r, worker_fd) if fd is not None and fd >= 0]
        try:
            readable, _, _ = select.select(fds, [], [], max(0.0, timeout))
        except InterruptedError:
            return False
        if self._r < 0 or self._r not in readable:
            return False
        try:
            data = os.read(self._r, 4096)
        except BlockingIOError:
            return False
        return WAKE in data

    def close(self) -> None:
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                if fd >= 0:
                    os.close(fd)
        self._r, self._w = -1, -1
