"""The inbox scan: the source of truth for what is waiting and what is ready to claim.

Filesystem events only make a scan happen sooner; a periodic scan catches anything they miss.
An entry is ready when its whole tree (names, sizes, mtimes) has not changed for
``settle_seconds`` and holds no in-progress file (rsync temp names, ``*.part``, ...), or, when a
``ready_marker`` is configured, as soon as a folder holds that marker.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from sharpmld.intake.jobspec import peek_priority
from sharpmld.intake.names import is_in_progress, is_junk
from sharpmld.intake.walk import TreeSignature, tree_signature

STALE_IN_PROGRESS = 120.0


@dataclass
class Entry:
    """One top-level inbox entry being watched."""

    name: str
    is_dir: bool
    signature: TreeSignature
    changed_at: float
    first_seen: float
    mtime: float
    priority: int = 0
    ready: bool = False
    ready_at: float | None = None
    priority_read: bool = False


class InboxScanner:
    """Tracks inbox entries across scans and says which are ready, in claim order."""

    def __init__(self, inbox: Path, *, settle: float, marker: str, max_entries: int) -> None:
        self.inbox = inbox
        self.settle = settle
        self.marker = marker
        self.max_entries = max_entries
        self.entries: dict[str, Entry] = {}

    def scan(self, now: float) -> list[Entry]:
        """Rescan the inbox; return the ready entries, highest priority then oldest first."""
        seen: set[str] = set()
        try:
            listing = list(os.scandir(self.inbox))
        except FileNotFoundError:
            listing = []
        for dirent in listing:
            name = dirent.name
            if is_junk(name) or is_in_progress(name):
                continue
            try:
                st = dirent.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            seen.add(name)
            is_dir = stat.S_ISDIR(st.st_mode)
            signature = tree_signature(dirent.path, self.max_entries, st)
            entry = self.entries.get(name)
            if entry is None or entry.signature != signature or entry.is_dir != is_dir:
                entry = Entry(name, is_dir, signature, now, entry.first_seen if entry else now, st.st_mtime)
                self.entries[name] = entry
            entry.ready = self._is_ready(entry, now)
            if entry.ready and entry.ready_at is None:
                entry.ready_at = now
            if entry.ready and entry.is_dir and not entry.priority_read:
                # job.toml is part of the signature: if it changes, the entry is new again.
                entry.priority = peek_priority(self.inbox / name)
                entry.priority_read = True
        for gone in set(self.entries) - seen:
            del self.entries[gone]
        ready = [e for e in self.entries.values() if e.ready]
        ready.sort(key=lambda e: (-e.priority, e.mtime, e.name))
        return ready

    def _is_ready(self, entry: Entry, now: float) -> bool:
        if entry.signature.in_progress:
            # A transfer in progress keeps changing the tree; one that has not moved for a long
            # time is a stray file that happens to look like a temp name, not a live copy.
            return now - entry.changed_at >= max(STALE_IN_PROGRESS, 10 * self.settle)
        if self.marker and entry.is_dir:
            return any(Path(p).as_posix() == self.marker for p, *_ in entry.signature.entries)
        return now - entry.changed_at >= self.settle

    def next_due(self) -> float | None:
        """When the earliest settling entry will have settled (to schedule the next scan)."""
        waiting = [
            e.changed_at
            + (max(STALE_IN_PROGRESS, 10 * self.settle) if e.signature.in_progress else self.settle)
            for e in self.entries.values()
            if not e.ready and not (self.marker and e.is_dir)
        ]
        return min(waiting) if waiting else None

    def forget(self, name: str) -> None:
        """Drop an entry after it was claimed (or lost to another daemon)."""
        self.entries.pop(name, None)

    @property
    def settling(self) -> int:
        """Entries seen but not yet ready."""
        return sum(1 for e in self.entries.values() if not e.ready)
