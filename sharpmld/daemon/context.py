"""The daemon as its helper rooms see it: what claiming, routing, mishaps and the status file
may read of it, and the few fields they move on.

``loop.Daemon`` is the one implementation. The helpers take this Protocol instead of
importing the loop, so the daemon's rooms import in one direction: loop → helpers → context.
"""

from __future__ import annotations

from typing import Any, Protocol

from sharpmld.core.config import Config
from sharpmld.daemon.held import HeldBack
from sharpmld.daemon.housekeeping import Housekeeping
from sharpmld.daemon.jobrun import JobRun
from sharpmld.daemon.stopping import StopPolicy
from sharpmld.intake.scanner import Entry, InboxScanner
from sharpmld.observers.events import Observers
from sharpmld.observers.metrics import Metrics
from sharpmld.queue.layout import Layout
from sharpmld.queue.lease import Owner
from sharpmld.supervisor.checkpoint import CheckpointHasher


class DaemonContext(Protocol):
    """One root's daemon, seen from the rooms that act on its behalf."""

    # moved on by the helpers
    redispatch: bool  # the job in flight waits for a new worker
    unavailable_logged: str  # the engine's last reason, said once
    next_orphan_check: float
    quiet_until: float  # after an error in a step, no work until then

    @property
    def config(self) -> Config: ...
    @property
    def layout(self) -> Layout: ...
    @property
    def log(self) -> Any: ...
    @property
    def owner(self) -> Owner: ...
    @property
    def lease_timeout(self) -> float: ...
    @property
    def stopping(self) -> StopPolicy: ...
    @property
    def current(self) -> JobRun | None: ...
    @property
    def paused(self) -> str: ...
    @property
    def ready(self) -> list[Entry]: ...
    @property
    def scanner(self) -> InboxScanner: ...
    @property
    def supervisor(self) -> Any: ...  # the Supervisor, or a fake with its public methods
    @property
    def hasher(self) -> CheckpointHasher: ...
    @property
    def housekeeping(self) -> Housekeeping: ...
    @property
    def metrics(self) -> Metrics | None: ...
    @property
    def events(self) -> Observers: ...
    @property
    def held(self) -> HeldBack: ...
    @property
    def cluster(self) -> Any: ...  # the cluster intake, or None in the single-host mode

    def closed(self, run: JobRun, now: float) -> None:
        """The job left this daemon's hands (done, failed, handed back or released)."""
