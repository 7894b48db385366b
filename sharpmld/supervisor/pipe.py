"""The worker's events pipe, seen from the daemon: bytes in, typed events out, never blocking.

The supervisor decides what an event means for the worker's state; this module only turns a
non-blocking file descriptor into events and says, in words meant for a person, why a worker
that garbles its events can no longer be trusted.
"""

from __future__ import annotations

import contextlib
import os

from sharpmld.core.errors import ProtocolError
from sharpmld.protocol import JobRequest, LineReader, Stop, SupervisorEvent, decode

CHUNK = 1 << 16  # bytes asked for by one read
MAX_READS = 64  # chunks read from the events pipe per step, so a flood cannot hold the loop


def read_chunk(fd: int) -> bytes | None:
    """What the pipe holds now: None when nothing (yet), ``b""`` at EOF (the worker is gone)."""
    try:
        return os.read(fd, CHUNK)
    except BlockingIOError:
        return None


def close(fd: int | None) -> None:
    """Close the read end; the worker may already have taken it down with it."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


class EventParser:
    """Splits the pipe's bytes into lines and decodes each into a worker event."""

    def __init__(self) -> None:
        self._lines = LineReader()

    def feed(self, chunk: bytes) -> tuple[list[SupervisorEvent], str]:
        """The events in ``chunk``, and what was wrong with its first bad line ("" if none).

        Events before a bad line are returned, so the supervisor applies them before it gives
        up on the worker; nothing after a bad line is. A line too long to hold raises
        ``ProtocolError``: nothing of that chunk can be read.
        """
        try:
            lines = self._lines.feed(chunk)
        except ProtocolError:
            raise ProtocolError("the worker sent an oversized message") from None
        events: list[SupervisorEvent] = []
        for line in lines:
            try:
                message = decode(line)
                if isinstance(message, JobRequest | Stop):
                    raise ProtocolError("the worker sent a command, not an event")
            except ProtocolError as exc:
                return events, f"the worker sent a malformed event: {exc.message}"
            events.append(message)
        return events, ""
