"""Process utilities for the worker: signal its group, poll it, name its exit.

Nothing here blocks: the supervisor's state machine polls on every ``step`` instead of waiting,
so the daemon keeps scanning and heartbeating while a worker is being stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Protocol


class Child(Protocol):
    """What the supervisor needs of a worker process (a real one, or a test's stand-in)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None:
        """The exit status once the process has been reaped, else None (never blocks)."""

    def send(self, data: bytes) -> bool:
        """Write to the worker's command pipe; False when the pipe is gone."""

    def close(self) -> None:
        """Close the command pipe (the worker exits when it sees EOF)."""


class PopenChild:
    """A ``subprocess.Popen`` worker, seen through the ``Child`` interface."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    @property
    def pid(self) -> int:
        return self._proc.pid

    def poll(self) -> int | None:
        return self._proc.poll()

    def send(self, data: bytes) -> bool:
        stdin = self._proc.stdin
        if stdin is None:
            return False
        try:
            stdin.write(data)
            stdin.flush()
        except (OSError, ValueError):
            return False
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()


def signal_group(pid: int, sig: int) -> bool:
    """Send ``sig`` to the process group led by ``pid``; False when it is already gone (ESRCH).

    The worker is started in its own session, so its group holds it and anything it started;
    one ``killpg`` reaches them all.
    """
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # The group exists but we may not signal it (should not happen: we started it).
        return True
    return True


def describe_exit(code: int | None) -> str:
    """A worker's exit status in words."""
    if code is None:
        return "the worker vanished"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the worker was killed by {name}"
    return f"the worker exited with status {code}"
