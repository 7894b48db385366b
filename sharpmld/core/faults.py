"""Crash points for the crash tests: named places where a test may make the process die.

Set ``SHARPMLD_CRASHPOINTS="claimed:0.2,finishing:0.1"`` and, at each named point, the
process SIGKILLs itself with that probability. Unset (always, outside tests), a crash point
is one dictionary lookup. This is how the crash test reaches the instants between two renames
that random kills would almost never hit. Before dying, the process writes one line,
``crashpoint fired: NAME``, to its stderr, so the test can count which points it really reached.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal

FIRED = "crashpoint fired:"
_POINTS: dict[str, float] = {}
for _item in filter(None, os.environ.get("SHARPMLD_CRASHPOINTS", "").split(",")):
    _name, _, _p = _item.partition(":")
    _POINTS[_name.strip()] = float(_p or 1.0)


def crashpoint(name: str) -> None:
    """Die here, abruptly, if a test asked for it."""
    p = _POINTS.get(name)
    if p and random.random() < p:
        with contextlib.suppress(OSError):  # evidence for the test; dying matters more
            os.write(2, f"{FIRED} {name} (pid {os.getpid()})\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)
