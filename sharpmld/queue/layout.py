"""The folder tree under the root, and the checks that make renames inside it atomic."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sharpmld.core.errors import ConfigError

STATES = ("inbox", "working", "done", "failed")

# Names inside a job folder that belong to sharpmld, not to the person who dropped the job.
INPUT_DIR = "input"
JOB_FILE = "job.json"
LEASE_FILE = "lease.json"
CANCEL_FILE = "CANCEL"  # a cancel request for a running job, written by `sharpmld cancel`
PROGRESS_FILE = "progress.json"
RESULT_FILE = "result.json"
ERROR_TXT = "ERROR.txt"
ERROR_JSON = "error.json"
JOB_LOG = "job.log"
IMAGES_DIR = "images"  # the working copies of the photos, one PNG each

# In the state folder: each daemon's status file, daemon-HOST-PID.json, that `sharpmld status` reads.
DAEMON_STATUS_PREFIX = "daemon-"


@dataclass(frozen=True)
class Layout:
    """Paths of the state-machine tree: inbox -> working -> done | failed."""

    root: Path

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def working(self) -> Path:
        return self.root / "working"

    @property
    def done(self) -> Path:
        return self.root / "done"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    @property
    def state_dir(self) -> Path:
        """The daemon's own hidden state (caches, pid files)."""
        return self.root / ".sharpmld"

    def state(self, name: str) -> Path:
        """The folder of one state by name."""
        if name not in STATES:
            raise ValueError(f"unknown state {name!r}")
        return self.root / name

    def ensure(self) -> None:
        """Create the tree; refuse a root whose state folders span filesystems."""
        for path in (self.root, *(self.state(s) for s in STATES), self.state_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.check_one_filesystem()

    def check_one_filesystem(self) -> None:
        """rename() is atomic only within one filesystem: a mounted-over state folder breaks it."""
        devices = {name: os.stat(self.state(name)).st_dev for name in STATES}
        if len(set(devices.values())) > 1:
            detail = ", ".join(f"{k}: device {v}" for k, v in devices.items())
            raise ConfigError(
                f"the folders under {self.root} are on different filesystems ({detail}); "
                "keep inbox, working, done and failed on one volume so that moves are atomic"
            )

    def free_bytes(self) -> int:
        """Free space on the root's volume, for the people and the low-disk guard."""
        return shutil.disk_usage(self.root).free
