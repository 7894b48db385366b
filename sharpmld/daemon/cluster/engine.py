"""What the daemon's loop sees in place of a model worker when the models run elsewhere.

In the cluster mode the intake loads no model: workers on other hosts do. The loop still asks
its supervisor for a state, events and memory; this stand-in answers with a state of its own
(``remote``, shown by ``sharpmld status``) and nothing to report, so the single-host code
paths stay as they are and never dispatch a job here.
"""

from __future__ import annotations

from pathlib import Path

from sharpmld.protocol import JobRequest, SupervisorEvent
from sharpmld.supervisor.supervisor import WorkerInfo

REMOTE = "remote"


class RemoteEngine:
    """The supervisor's public face, for a daemon whose photos are made by cluster workers."""

    def __init__(self) -> None:
        self.state = REMOTE
        self.unavailable_reason = ""
        self.info = WorkerInfo()
        self.package_dir: Path | None = None

    def start(self, now: float) -> None:
        """Nothing to start: the workers run on their own hosts."""

    def stop(self, grace: float = 10.0) -> None:
        """Nothing to stop."""

    def fileno(self) -> int | None:
        return None

    def read_events(self, now: float) -> list[SupervisorEvent]:
        return []

    def check(self, now: float) -> list[SupervisorEvent]:
        return []

    def memory_bytes(self, max_age: float = 1.0) -> int:
        return 0

    def send_job(self, request: JobRequest, now: float) -> None:
        raise RuntimeError("the cluster intake publishes photos; it runs no model itself")
