"""Housekeeping between jobs: the low-disk guard, the retention sweep, and the removal of
inbox entries whose writer died while staging them.

Same lifecycle as the daemon's other parts: ``start()``, ``step(now)`` that does what is due
and returns at once otherwise (the clock is the caller's: a test passes its own), ``stop()``.
"""

from __future__ import annotations

from typing import Any

from sharpmld.core.config import Config
from sharpmld.core.units import MB
from sharpmld.queue import delivery, retention
from sharpmld.queue.layout import Layout

DISK_CHECK_SECONDS = 5.0
RETENTION_SWEEP_SECONDS = 3600.0


class Housekeeping:
    """Says when the disk is too full to claim, removes expired finished jobs and abandoned
    staged inbox entries (at start, then hourly)."""

    def __init__(self, config: Config, layout: Layout, log: Any) -> None:
        self.config = config
        self.layout = layout
        self.log = log
        self.low_disk = False
        self.backoff_until = 0.0
        self._next_disk_check = 0.0
        self._next_sweep = 0.0

    def start(self) -> None:
        """Make every check due at the first step."""
        self._next_disk_check = self._next_sweep = float("-inf")

    def step(self, now: float) -> None:
        """Run whichever check is due (a disk check is one statvfs; a sweep, a listing)."""
        if now >= self._next_disk_check:
            self._next_disk_check = now + DISK_CHECK_SECONDS
            self._check_disk()
        if now >= self._next_sweep:
            self._next_sweep = now + RETENTION_SWEEP_SECONDS
            self._sweep()

    def disk_paused(self, now: float) -> bool:
        """Whether claiming must wait for space (below the minimum, or just after ENOSPC)."""
        return self.low_disk or now < self.backoff_until

    def stop(self) -> None:
        """Nothing runs in the background: nothing to stop."""

    def disk_filled_up(self, now: float) -> None:
        """A job hit ENOSPC and went back to the inbox: wait before claiming again."""
        wait = float(self.config.get("intake", "disk_full_retry_seconds"))
        self.backoff_until = now + wait
        self.log.warning("the disk filled up during a job; it went back to the inbox", retry_in_seconds=wait)

    def _check_disk(self) -> None:
        """Stop claiming below ``min_free_mb``; say so once, and once more when it recovers."""
        minimum = float(self.config.get("intake", "min_free_mb")) * MB
        try:
            free = self.layout.free_bytes()
        except OSError:
            return
        low = free < minimum
        if low == self.low_disk:
            return
        self.low_disk = low
        if low:
            self.log.warning(
                "low disk space: jobs wait in the inbox until space returns",
                free_mb=round(free / MB),
                min_free_mb=minimum / MB,
            )
        else:
            self.log.info("disk space is back: claiming again", free_mb=round(free / MB))

    def _sweep(self) -> None:
        removed = retention.sweep(
            self.layout,
            done_days=float(self.config.get("retention", "done_days")),
            failed_days=float(self.config.get("retention", "failed_days")),
        )
        if removed:
            self.log.info("retention removed old jobs", count=len(removed))
        for name in delivery.sweep_abandoned(self.layout):
            self.log.warning("removed an unfinished upload or submit whose writer is gone", name=name)
