"""How much memory the worker uses: sampled, because walking a process tree is not free.

The daemon's gauges and the supervisor's memory limit both ask on every loop step; one
sample serves them until it is ``max_age`` seconds old.
"""

from __future__ import annotations

from collections.abc import Callable

from sharpmld.core.units import MB


class MemorySampler:
    """Resident bytes of a process tree, measured at most once per ``max_age``."""

    def __init__(self, rss: Callable[[int], int], clock: Callable[[], float]) -> None:
        self._rss_of = rss
        self._clock = clock
        self._bytes = 0
        self._at = -1e18

    def bytes(self, pid: int | None, max_age: float = 1.0) -> int:
        """The last sample for ``pid`` (0 without a worker), taken anew when too old."""
        now = self._clock()
        if now - self._at > max_age:
            self._bytes = self._rss_of(pid) if pid is not None else 0
            self._at = now
        return self._bytes

    def over(self, pid: int | None, limit_mb: float) -> str:
        """Why ``pid`` is over ``limit_mb`` (0: no limit), for the job's error; "" if it is not."""
        if not limit_mb or pid is None:
            return ""
        used = self.bytes(pid, max_age=0.5)
        if used > limit_mb * MB:
            return f"the worker used {used / MB:.0f} MB, over the {limit_mb:g} MB limit"
        return ""
