"""Waiting on launchd, bounded: a graceful stop, a bootout that drains, a bootstrap that is early.

launchd stops a job asynchronously. ``launchctl kill SIGTERM`` returns at once while the
daemon finishes its job in flight; ``bootout`` answers 36 (EINPROGRESS) while the job is still
exiting; and a ``bootstrap`` right after a bootout can answer 5 (EIO) for a few seconds while
launchd tears the old job down. Each wait here polls ``launchctl`` against a deadline on an
injected clock, so that tests step it without sleeping, and says what it is waiting for.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from typing import Protocol, TextIO

from sharpmld.cli.service.launchctl import EINPROGRESS, EIO, Launchctl

STOP_POLL_SECONDS = 0.5
"""How often a restart looks whether the daemon has exited after SIGTERM."""

BOOTOUT_POLL_SECONDS = 1.0
"""How often a draining bootout is repeated: once a second, as Homebrew's ``brew services`` does."""

BOOTSTRAP_RETRY_SECONDS = 30.0
"""How long a bootstrap that answers EIO right after a bootout is retried."""

BOOTSTRAP_FIRST_DELAY, BOOTSTRAP_MAX_DELAY = 0.5, 4.0


class Clock(Protocol):
    """Monotonic time and a sleep: the real ones, or a test's fake that advances when slept."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """``time.monotonic`` and ``time.sleep``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def wait_for_stop(launchctl: Launchctl, service: str, pid: str | None, limit: float, clock: Clock) -> bool:
    """Whether the job with ``pid`` exited within ``limit`` seconds (unloaded, not running, or
    already restarted by launchd under another pid)."""
    deadline = clock.monotonic() + limit
    while True:
        state = launchctl.state(service)
        if state is None or not state.running or state.pid != pid:
            return True
        if clock.monotonic() >= deadline:
            return False
        clock.sleep(STOP_POLL_SECONDS)


@dataclass(frozen=True)
class Bootout:
    """How a bootout ended: ``gone``, still ``draining`` at the deadline, or ``failed``."""

    outcome: str
    result: subprocess.CompletedProcess[str]


def bootout_until_gone(
    launchctl: Launchctl, service: str, limit: float, clock: Clock, out: TextIO
) -> Bootout:
    """Unload ``service``, repeating the bootout while launchd says the job is still exiting.

    This follows Homebrew's ``brew services stop`` (``Library/Homebrew/services/cli.rb``,
    ``Services::Cli.stop``): after ``bootout`` it sleeps a second and runs ``bootout`` again
    for as long as the exit status is EINPROGRESS or the service is still loaded, and stops at
    ESRCH; Homebrew may wait forever, this waits at most ``limit`` seconds.
    """
    deadline = clock.monotonic() + limit
    said = False
    while True:
        result = launchctl.run("bootout", service)
        if launchctl.not_loaded(result):
            return Bootout("gone", result)
        if result.returncode not in (0, EINPROGRESS):
            return Bootout("failed", result)
        if result.returncode == 0 and launchctl.state(service) is None:
            return Bootout("gone", result)
        if clock.monotonic() >= deadline:
            return Bootout("draining", result)
        if not said:
            out.write(f"waiting for the running job to finish (at most {limit:g} s)…\n")
            out.flush()
            said = True
        clock.sleep(BOOTOUT_POLL_SECONDS)


def bootstrap_retrying(
    launchctl: Launchctl, plist: str, retry_for: float, clock: Clock, out: TextIO
) -> subprocess.CompletedProcess[str]:
    """``bootstrap`` the plist; an EIO answer is retried with a doubling delay for ``retry_for``
    seconds (0: not at all), since right after a bootout launchd may still hold the old job.

    Homebrew's ``launchctl_load`` does not retry; the retry is ours, for the reinstall case only.
    """
    deadline = clock.monotonic() + retry_for
    delay = BOOTSTRAP_FIRST_DELAY
    said = False
    while True:
        result = launchctl.run("bootstrap", launchctl.domain, plist)
        if result.returncode != EIO or clock.monotonic() + delay > deadline:
            return result
        if not said:
            out.write("launchd is still removing the old job; retrying the bootstrap…\n")
            out.flush()
            said = True
        clock.sleep(delay)
        delay = min(delay * 2, BOOTSTRAP_MAX_DELAY)
