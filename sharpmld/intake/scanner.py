"""The inbox scan: the source of truth for what is waiting and what is ready to claim.

Filesystem events only make a scan happen sooner; a periodic scan catches anything they miss.
An entry is ready when its whole tree (names, sizes, mtimes) has not changed for
``settle_seconds`` and holds no in-progress file (rsync temp names, ``*.part``, ...), or, when a
``ready_marker`` is configured, as soon as a folder holds that marker. A tree that does hold an
in-progress file is taken once it has not changed for ``in_progress_seconds`` (or ten settle
times, if longer): a copy still running keeps changing it, so a file that sits still that long
is a leftover, not a live transfer. A tree that would be ready but holds a file carrying
Finder's copy-in-progress markers (:func:`sharpmld.core.macos.finder_is_copying`) is not taken
while they are there: a cancelled Finder copy leaves a partial file under its final name with
them, so no amount of waiting makes it whole. :meth:`InboxScanner.held_back` says which entries
wait, and why, for ``sharpmld status``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from sharpmld.core.macos import FinderMarks, finder_is_copying
from sharpmld.intake.jobspec import peek_priority
from sharpmld.intake.names import is_in_progress, is_junk
from sharpmld.intake.walk import TreeSignature, tree_signature

STALE_IN_PROGRESS = 120.0
"""The default of ``[intake] in_progress_seconds``."""

SETTLING, IN_PROGRESS, NO_READY_MARKER, TEMP_NAME = "settling", "in_progress", "no_ready_marker", "temp_name"
FINDER_COPYING = "finder_copying"
"""Why an entry is held back: still changing; holding a file whose name says it is still
arriving; a folder without the configured ready marker; a top-level entry with such a name
(never taken under that name); holding a file Finder marks as being copied."""
UNREADABLE, NOT_WRITABLE = "unreadable", "not_writable"
"""Why an entry is stuck until someone fixes its permissions: this user cannot read it (or
list the folder); or cannot move the folder (renaming a folder needs write permission on it)."""


@dataclass(frozen=True)
class Held:
    """One inbox entry not taken yet, and why; ``due`` (scan clock) is when it will be, if
    nothing changes, or None if waiting alone never makes it ready."""

    name: str
    reason: str
    due: float | None
    path: str = ""


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
    finder_copying: str = ""
    """The relative path of a file Finder marks as still being copied, as of the last scan."""


class InboxScanner:
    """Tracks inbox entries across scans and says which are ready, in claim order."""

    def __init__(
        self,
        inbox: Path,
        *,
        settle: float,
        marker: str,
        max_entries: int,
        in_progress_hold: float = STALE_IN_PROGRESS,
        marks: FinderMarks | None = None,
    ) -> None:
        self.inbox = inbox
        self.settle = settle
        self.marker = marker
        self.max_entries = max_entries
        self.in_progress_hold = max(in_progress_hold, 10 * settle)
        self.marks = marks or FinderMarks()
        self.entries: dict[str, Entry] = {}
        self.temp_names: list[str] = []
        """Top-level names that say a copy is still arriving, as of the last scan."""
        self.stuck: dict[str, str] = {}
        """Entries this user cannot read or move, and why, as of the last scan."""
        self.refused: dict[str, tuple[str, float]] = {}
        """Entries whose claim was refused (reason, ``st_ctime`` then): held until the entry's
        ownership or mode changes (which changes its ctime), not retried every scan."""

    def scan(self, now: float) -> list[Entry]:
        """Rescan the inbox; return the ready entries, highest priority then oldest first."""
        seen: set[str] = set()
        try:
            listing = list(os.scandir(self.inbox))
        except FileNotFoundError:
            listing = []
        self.temp_names = sorted(d.name for d in listing if is_in_progress(d.name) and not is_junk(d.name))
        self.stuck = {}
        for dirent in listing:
            name = dirent.name
            if is_junk(name) or is_in_progress(name):
                continue
            try:
                st = dirent.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            except OSError:
                st = None
            seen.add(name)
            try:
                reason = self._stuck_reason(dirent.path, name, st) or self._update(dirent, st, now)
            except FileNotFoundError:
                reason = ""  # gone since the listing: the next scan forgets it
            except OSError:
                reason = UNREADABLE  # one entry's trouble stays with that entry
            if reason:
                self.stuck[name] = reason  # kept as an entry, so a later fix starts it settled
        for gone in set(self.refused) - seen:
            del self.refused[gone]
        for gone in set(self.entries) - seen:
            del self.entries[gone]
        ready = [e for e in self.entries.values() if e.ready and e.name not in self.stuck]
        ready.sort(key=lambda e: (-e.priority, e.mtime, e.name))
        return ready

    def _update(self, dirent: os.DirEntry[str], st: os.stat_result | None, now: float) -> str:
        """Track one entry's tree; "" (never stuck: errors raise for the caller to judge)."""
        assert st is not None
        name = dirent.name
        is_dir = stat.S_ISDIR(st.st_mode)
        signature = tree_signature(dirent.path, self.max_entries, st)
        entry = self.entries.get(name)
        if entry is None or entry.signature != signature or entry.is_dir != is_dir:
            entry = Entry(name, is_dir, signature, now, entry.first_seen if entry else now, st.st_mtime)
            self.entries[name] = entry
        settled = self._is_ready(entry, now)
        # Only a tree about to be taken pays for the look-up; Finder's markers change no
        # size or mtime, so they are looked at again on every scan until they are gone.
        entry.finder_copying = self._finder_copying(Path(dirent.path), entry) if settled else ""
        entry.ready = settled and not entry.finder_copying
        if entry.ready and entry.ready_at is None:
            entry.ready_at = now
        if entry.ready and entry.is_dir and not entry.priority_read:
            # job.toml is part of the signature: if it changes, the entry is new again.
            entry.priority = peek_priority(self.inbox / name)
            entry.priority_read = True
        return ""

    def _stuck_reason(self, path: str, name: str, st: os.stat_result | None) -> str:
        """Why this user can never take the entry as it is now ("" if nothing stops it)."""
        if st is None:
            return UNREADABLE
        refused = self.refused.get(name)
        if refused is not None:
            if refused[1] == st.st_ctime:
                return refused[0]
            del self.refused[name]  # its owner or mode changed: try again
        if stat.S_ISLNK(st.st_mode):
            return ""  # refused at validation, with its own message
        if stat.S_ISDIR(st.st_mode):
            if not os.access(path, os.R_OK | os.X_OK):
                return UNREADABLE
            if not os.access(path, os.W_OK):
                return NOT_WRITABLE
        elif stat.S_ISREG(st.st_mode) and not os.access(path, os.R_OK):
            return UNREADABLE
        return ""

    def refuse(self, name: str, reason: str) -> None:
        """The claim of ``name`` failed for ``reason``: hold it until its permissions change."""
        try:
            ctime = (self.inbox / name).lstat().st_ctime
        except OSError:
            return
        self.refused[name] = (reason, ctime)
        self.stuck[name] = reason

    def _is_ready(self, entry: Entry, now: float) -> bool:
        if entry.signature.in_progress:
            # A transfer in progress keeps changing the tree; one that has not moved for a long
            # time is a stray file that happens to look like a temp name, not a live copy.
            return now - entry.changed_at >= self.in_progress_hold
        if self.marker and entry.is_dir:
            return any(Path(p).as_posix() == self.marker for p, *_ in entry.signature.entries)
        return now - entry.changed_at >= self.settle

    def _finder_copying(self, path: Path, entry: Entry) -> str:
        """The first file of ``entry`` that Finder marks as being copied, or ""."""
        if not entry.is_dir:
            return entry.name if finder_is_copying(path, self.marks) else ""
        for rel, kind, *_ in entry.signature.entries:
            if kind == "file" and not is_junk(Path(rel).name) and finder_is_copying(path / rel, self.marks):
                return rel
        return ""

    def next_due(self) -> float | None:
        """When the earliest settling entry will have settled (to schedule the next scan)."""
        waiting = [h.due for h in self.held_back() if h.due is not None]
        return min(waiting) if waiting else None

    def held_back(self) -> list[Held]:
        """The entries not ready as of the last scan, each with its reason, sorted by name."""
        held = [Held(name, TEMP_NAME, None, name) for name in self.temp_names]
        held += [Held(name, reason, None, name) for name, reason in self.stuck.items()]
        for e in self.entries.values():
            if e.ready or e.name in self.stuck:
                continue
            if e.finder_copying:
                where = f"{e.name}/{e.finder_copying}" if e.is_dir else e.name
                held.append(Held(e.name, FINDER_COPYING, None, where))
            elif e.signature.in_progress:
                part = next((p for p, *_ in e.signature.entries if is_in_progress(Path(p).name)), "")
                held.append(
                    Held(e.name, IN_PROGRESS, e.changed_at + self.in_progress_hold, f"{e.name}/{part}")
                )
            elif self.marker and e.is_dir:
                held.append(Held(e.name, NO_READY_MARKER, None))
            else:
                held.append(Held(e.name, SETTLING, e.changed_at + self.settle))
        return sorted(held, key=lambda h: h.name)

    def forget(self, name: str) -> None:
        """Drop an entry after it was claimed (or lost to another daemon)."""
        self.entries.pop(name, None)

    @property
    def bytes_seen(self) -> int:
        """Bytes of the regular files in every entry as the last scan saw them (its trees'
        signatures: no walk of its own; a tree past ``max_entries`` counts its first ones)."""
        return sum(
            size
            for e in self.entries.values()
            for _rel, kind, size, _m in e.signature.entries
            if kind == "file"
        )

    @property
    def settling(self) -> int:
        """Entries seen but not yet ready."""
        return sum(1 for e in self.entries.values() if not e.ready and e.name not in self.stuck)
