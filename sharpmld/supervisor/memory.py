"""How much memory the worker uses: sampled, because walking a process tree is not free.

What counts is what makes the machine swap. On macOS that is the physical footprint: the
resident size misses MPS tensors (unified memory the GPU holds for the process) and compressed
pages, so a worker polled by RSS can grow far past its cap unseen. Elsewhere it is the
resident size (PSS or USS would need a walk of ``/proc/<pid>/smaps`` of a process mapping a
multi-gigabyte checkpoint, on every sample).

The daemon's gauges and the supervisor's memory limit both ask on every loop step; one
sample serves them until it is ``max_age`` seconds old.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import psutil

from sharpmld.core.units import MB
from sharpmld.supervisor.footprint import FootprintReader

PerProcess = Callable[[int], int | None]


def resident_bytes(pid: int) -> int | None:
    """RSS of one process, None if it is gone or cannot be read."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None


def descendants(pid: int) -> list[int]:
    """Every process the worker started, and theirs ([] once the worker is gone)."""
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


class TreeMemory:
    """Bytes a process tree holds: physical footprints on macOS, resident sizes elsewhere."""

    def __init__(
        self,
        platform: str = sys.platform,
        *,
        footprint: PerProcess | None = None,
        rss: PerProcess = resident_bytes,
        children: Callable[[int], list[int]] = descendants,
    ) -> None:
        self._mac = platform == "darwin"
        self._footprint = footprint if footprint is not None else FootprintReader(platform=platform)
        self._rss = rss
        self._children = children
        self.kind = "physical footprint" if self._mac else "resident memory"

    def one(self, pid: int) -> int:
        """One process; on macOS its resident size only where its footprint cannot be read."""
        used = self._footprint(pid) if self._mac else None
        if used is None:
            used = self._rss(pid)
        return used or 0

    def __call__(self, pid: int) -> int:
        total = 0
        for each in (pid, *self._children(pid)):
            with contextlib.suppress(psutil.Error):
                total += self.one(each)
        return total


class MemorySampler:
    """Bytes of a process tree, measured at most once per ``max_age``."""

    def __init__(
        self, measure: Callable[[int], int], clock: Callable[[], float], kind: str = "memory"
    ) -> None:
        self._measure = measure
        self._clock = clock
        self._kind = kind
        self._bytes = 0
        self._at = -1e18

    def bytes(self, pid: int | None, max_age: float = 1.0) -> int:
        """The last sample for ``pid`` (0 without a worker), taken anew when too old."""
        now = self._clock()
        if now - self._at > max_age:
            self._bytes = self._measure(pid) if pid is not None else 0
            self._at = now
        return self._bytes

    def over(self, pid: int | None, limit_mb: float) -> str:
        """Why ``pid`` is over ``limit_mb`` (0: no limit), for the job's error; "" if it is not."""
        if not limit_mb or pid is None:
            return ""
        used = self.bytes(pid, max_age=0.5)
        if used > limit_mb * MB:
            return f"the worker's {self._kind} reached {used / MB:.0f} MB, over the {limit_mb:g} MB limit"
        return ""
