"""Keeping the inbox watcher up: retried with a back-off when it cannot start.

The watcher only makes the daemon notice new files sooner; the periodic scan works without
it. So a watcher that fails (no inotify watches left, the inbox briefly missing) is said once,
retried from ``step(now)`` at growing intervals, and said again only when it is back.
"""

from __future__ import annotations

from typing import Any

FIRST_RETRY = 1.0
MAX_RETRY = 60.0


class WatcherKeeper:
    """Starts the watcher, restarts it when its thread died, and retries when that fails."""

    def __init__(self, watcher: Any, log: Any, scan_interval: float) -> None:
        self.watcher = watcher
        self.log = log
        self.scan_interval = scan_interval
        self.up = False
        self.failures = 0
        self._retry_at = 0.0
        self._backoff = FIRST_RETRY

    def start(self, now: float) -> None:
        self._try(now)

    def step(self, now: float) -> None:
        """Retry when due; otherwise let the watcher restart a dead thread (never blocks long)."""
        if not self.up:
            if now >= self._retry_at:
                self._try(now)
            return
        try:
            restarted = self.watcher.check()
        except OSError as exc:
            self._failed(now, exc)
            return
        if restarted:
            self.log.warning("inbox watcher restarted")

    def stop(self) -> None:
        self.watcher.stop()
        self.up = False

    def _try(self, now: float) -> None:
        try:
            self.watcher.start()
        except OSError as exc:
            self._failed(now, exc)
            return
        self.up = True
        if self.failures:
            self.log.info("inbox watcher started", attempts=self.failures + 1)
        self.failures = 0
        self._backoff = FIRST_RETRY

    def _failed(self, now: float, exc: OSError) -> None:
        self.up = False
        self.failures += 1
        if self.failures == 1:
            self.log.warning(
                "inbox watcher could not start; the inbox is still scanned, and the watcher retried",
                error=str(exc),
                scan_interval_seconds=self.scan_interval,
            )
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, MAX_RETRY)
