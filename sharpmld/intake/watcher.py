"""Filesystem events as hints: any change under the inbox asks the daemon for a rescan.

Events can be lost, coalesced, or (on network shares) never sent, which is why the daemon also
rescans on a timer; this module only makes the common case fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

CHANGES: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    DirCreatedEvent,
    FileDeletedEvent,
    DirDeletedEvent,
    FileModifiedEvent,
    DirModifiedEvent,
    FileMovedEvent,
    DirMovedEvent,
    FileClosedEvent,
]
"""The events that say the inbox changed. Not opens and read-only closes: with them in the
inotify mask, every scan (which opens each entry) queued two events per file, and an inbox of
thousands of folders overflowed the kernel's queue on every scan; watchdog answers an overflow
by walking the whole tree again to re-add its watches, which kept a core half busy."""


class _Poke(FileSystemEventHandler):  # type: ignore[misc]
    def __init__(self, poke: Callable[[], None]) -> None:
        self._poke = poke

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in ("opened", "closed_no_write"):
            self._poke()


def _unpair_moves() -> None:
    """On Linux, watchdog holds each "moved out" event for half a second to pair it with its
    "moved in" half. We only need "something changed", and that half second, spent on the
    daemon's own claim renames, would delay noticing the next drop. Not pairing is harmless."""
    try:
        from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
    except ImportError:  # not Linux, or another watchdog layout: nothing to tune
        return
    InotifyMoveEventGrouper.delay = 0.0


class InboxWatcher:
    """Runs a watchdog observer on the inbox and calls ``poke`` on every change."""

    def __init__(self, inbox: Path, poke: Callable[[], None], *, polling: bool = False) -> None:
        self.inbox = inbox
        self.poke = poke
        self.polling = polling
        self.restarts = 0
        self._observer: Any = None

    def start(self) -> None:
        """Start (or restart) observing; a failure leaves the periodic scan to do the work."""
        self.stop()
        _unpair_moves()
        observer: Any = PollingObserver(timeout=1.0) if self.polling else Observer()
        observer.schedule(_Poke(self.poke), str(self.inbox), recursive=True, event_filter=CHANGES)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def check(self) -> bool:
        """Restart a dead observer thread (e.g. the inbox was replaced); True if it restarted."""
        if self._observer is not None and not self._observer.is_alive():
            self.restarts += 1
            self.start()
            return True
        return False

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None
