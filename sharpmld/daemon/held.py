"""The inbox entries the daemon holds back, and why, as the status file shows them.

Kept as last written, so the status file is rewritten only when the list changes.
"""

from __future__ import annotations

import time
from pathlib import PurePosixPath
from typing import Any

from sharpmld.core.users import effective_user
from sharpmld.intake.scanner import (
    FINDER_COPYING,
    IN_PROGRESS,
    NO_READY_MARKER,
    NOT_WRITABLE,
    TEMP_NAME,
    UNREADABLE,
    Held,
    InboxScanner,
)

HELD_SHOWN = 50
"""At most this many held-back entries go into the status file (the total is always there)."""


def held_message(held: Held, scanner: InboxScanner) -> str:
    """Why ``held`` is not taken yet, and what makes it go, for a person."""
    if held.reason == IN_PROGRESS:
        return (
            f"holds {held.path}, named like a copy still arriving: taken after "
            f"{scanner.in_progress_hold:g} s unchanged ([intake] in_progress_seconds)"
        )
    if held.reason == FINDER_COPYING:
        return (
            f"Finder is still copying {held.path}: taken once the copy ends; "
            "if it was cancelled, copy that file again"
        )
    if held.reason == NO_READY_MARKER:
        return f"waits for a file named {scanner.marker} in it ([intake] ready_marker)"
    if held.reason == UNREADABLE:
        return (
            f"the daemon's user ({_user()}) cannot read it: give it read access "
            f"(chmod -R u+rX, or chown -R {_user()} it); taken once it can"
        )
    if held.reason == NOT_WRITABLE:
        return (
            f"the daemon's user ({_user()}) cannot move it (moving a folder needs write "
            f"permission on it): chown -R {_user()} it or chmod u+w it; taken once it can"
        )
    if held.reason == TEMP_NAME:
        suffix = PurePosixPath(held.name).suffix or "the temporary ending"
        return f"named like a copy still arriving: never taken; rename it without {suffix} when complete"
    return f"settling: taken after {scanner.settle:g} s unchanged ([intake] settle_seconds)"


def _user() -> str:
    return effective_user()


class HeldBack:
    """The held-back entries as last written, so the file is rewritten only on a change."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.total = 0
        self._key: tuple[Any, ...] = ()
        self._said: dict[str, str] = {}  # stuck entries already logged, so each is said once

    def report(self, scanner: InboxScanner, log: Any) -> None:
        """Log each entry that is newly stuck (unreadable, not movable) once, with the fix."""
        for name, reason in scanner.stuck.items():
            if self._said.get(name) != reason:
                held = Held(name, reason, None, name)
                log.warning(
                    "inbox entry held back", name=name, reason=reason, why=held_message(held, scanner)
                )
        self._said = dict(scanner.stuck)

    def update(self, scanner: InboxScanner, now: float) -> bool:
        """Take the scanner's view at scan time ``now``; True if it differs from the last one."""
        held = scanner.held_back()
        key = (len(held), *((h.name, h.reason, h.path, h.due) for h in held[:HELD_SHOWN]))
        if key == self._key:
            return False
        self._key = key
        wall = time.time()  # ``now`` is the loop's clock; people read wall-clock times
        self.total = len(held)
        self.entries = [
            {
                "name": h.name,
                "reason": h.reason,
                "path": h.path or None,
                "until": None if h.due is None else wall + (h.due - now),
                "message": held_message(h, scanner),
            }
            for h in held[:HELD_SHOWN]
        ]
        return True
