"""How the worker is started: its command line, sandbox, identity, interpreter and environment.

Everything is computed by plain functions (``worker_command`` and its helpers), so tests can
check the exact argv, profile and environment on any platform; ``launch`` is the one place a
process is created.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sharpmld.core import fsio, memcap
from sharpmld.core.config import Config
from sharpmld.protocol import EVENT_FD_ENV
from sharpmld.supervisor.procs import Child, PopenChild
from sharpmld.supervisor.sandbox import SANDBOX_PROFILE, sandbox_prefix

WORKER_MODULE = "sharpmld.worker.main"
__all__ = ["SANDBOX_PROFILE", "WorkerCommand", "launch", "sandbox_prefix", "worker_command"]


@dataclass(frozen=True)
class WorkerCommand:
    """Everything needed to start one worker; ``launch`` turns it into a process."""

    argv: list[str]
    env: dict[str, str]
    pass_fds: tuple[int, ...]
    identity: dict[str, Any] = field(default_factory=dict)  # Popen user/group/extra_groups
    sandbox: tuple[str, ...] = ()  # the argv prefix that sandboxes the worker, () when off

    @property
    def python(self) -> str:
        """The interpreter that runs the worker (the argument before ``-m``)."""
        return self.argv[self.argv.index("-m") - 1]


def worker_limits(config: Config) -> dict[str, int]:
    """The rlimits the worker applies to itself first thing (see ``sharpmld.worker.limits``)."""
    return {
        "file_size_mb": int(config.get("worker", "max_file_size_mb")),
        "open_files": int(config.get("worker", "max_open_files")),
        "cpu_seconds": int(config.get("worker", "max_cpu_seconds")),
        "address_space_mb": int(config.get("worker", "max_address_space_mb")),
    }


def worker_command(
    config: Config,
    *,
    events_fd: int,
    package_dir: Path | None = None,
    base_env: dict[str, str] | None = None,
    platform: str | None = None,
    which: Callable[[str], str | None] = shutil.which,
    euid: int | None = None,
    memory_cap_mb: float | None = None,
) -> WorkerCommand:
    """The worker's command for ``config``; raises ValueError/KeyError when it cannot be run.

    The worker gets its memory cap as a number of MB (``memory_cap_mb``, resolved from the
    configuration when not given), never ``"auto"``: it caps its MPS allocator to that figure.
    """
    if memory_cap_mb is None:
        memory_cap_mb = memcap.resolve(config.get("worker", "max_memory_mb")).mb
    settings = {
        "factory": config.get("model", "factory"),
        "checkpoint": str(config.checkpoint),
        "device": config.get("model", "device"),
        "precision": config.get("model", "precision"),
        "daemon_pid": os.getpid(),
        "limits": worker_limits(config),
        "max_memory_mb": memory_cap_mb,
    }
    python = config.worker_python or sys.executable
    prefix = sandbox_prefix(
        bool(config.get("worker", "sandbox")),
        root=config.root,
        platform=platform,
        which=which,
        euid=euid,
        env=base_env,
    )
    identity = worker_identity(str(config.get("worker", "user")), euid=euid)
    return WorkerCommand(
        argv=[*prefix, python, "-m", WORKER_MODULE, json.dumps(settings)],
        env=worker_env(
            config, events_fd=events_fd, package_dir=package_dir, base_env=base_env, platform=platform
        ),
        pass_fds=(events_fd,),
        identity=identity,
        sandbox=tuple(prefix),
    )


# glibc's malloc(3) reads this at start; 128 KiB is its documented default starting value.
MMAP_THRESHOLD_ENV, MMAP_THRESHOLD = "MALLOC_MMAP_THRESHOLD_", "131072"


def worker_env(
    config: Config,
    *,
    events_fd: int,
    package_dir: Path | None,
    base_env: dict[str, str] | None = None,
    platform: str | None = None,
) -> dict[str, str]:
    """The daemon's environment plus the events pipe, and the package folder when needed.

    On Linux the worker's glibc gets a fixed mmap threshold. By default the threshold follows
    the largest block freed so far (up to 32 MiB, mallopt(3)), so once the network has freed
    its first activations, tensors up to that size come from the heap, where a freed one stays
    resident among live ones. A fixed threshold turns that off (mallopt(3): setting it
    disables the dynamic adjustment), so every tensor of 128 KiB or more has a mapping of its
    own that is given back when it is freed. On the real SHARP network this lowered the
    peak from 3.75 to 3.58 GiB in bf16 and from 6.68 to 6.50 GiB in fp32, the Gaussians
    unchanged (bench/RESULTS.md). A value the user set is kept; other C libraries ignore it.
    """
    env = dict(os.environ if base_env is None else base_env)
    env[EVENT_FD_ENV] = str(events_fd)
    env["PYTHONUNBUFFERED"] = "1"
    if (platform or sys.platform) == "linux":
        env.setdefault(MMAP_THRESHOLD_ENV, MMAP_THRESHOLD)
    if config.get("model", "device") in ("auto", "mps"):
        env.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
    if package_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(package_dir), env.get("PYTHONPATH", "")) if p)
    return env


def launch(command: WorkerCommand, *, stdout: int | None = None) -> Child:
    """Start the worker in its own session (so its whole group can be killed at once).

    ``stdout`` (a file descriptor) receives what the worker prints; None keeps the daemon's.
    """
    proc = subprocess.Popen(
        command.argv,
        stdin=subprocess.PIPE,
        stdout=stdout,
        pass_fds=command.pass_fds,
        env=command.env,
        start_new_session=True,
        close_fds=True,
        **command.identity,
    )
    return PopenChild(proc)


def package_path_for(python: str, state_dir: Path) -> Path:
    """For a worker in another Python (``python``), a folder exposing only this package.

    Adding our whole site-packages to a foreign interpreter's path would mix compiled modules
    of two Pythons; a folder holding one symlink to the package does not.
    """
    import sharpmld

    pylib = state_dir / "pylib"
    link = pylib / "sharpmld"
    package = Path(sharpmld.__file__).resolve().parent
    pylib.mkdir(parents=True, exist_ok=True)
    if not (link.is_symlink() and link.resolve() == package):
        tmp = fsio.temp_name_for(link)
        os.symlink(package, tmp)
        os.replace(tmp, link)
    return pylib


def worker_identity(user: str, *, euid: int | None = None) -> dict[str, Any]:
    """Popen arguments that run the worker as ``user`` (the daemon must be root to switch)."""
    if not user:
        return {}
    if (os.geteuid() if euid is None else euid) != 0:
        raise ValueError(f"worker.user = {user!r} needs the daemon to run as root")
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def give_job_folder(path: Path, user: str) -> None:
    """Let the worker's ``user`` read the inputs and write the outputs: hand it the whole folder.

    Recursive, because the worker reads files deep inside ``input/`` and writes next to them;
    symlinks are changed themselves and never followed, so a link planted in a job cannot
    give the worker a file outside it.
    """
    if not user or os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    uid, gid = entry.pw_uid, entry.pw_gid
    os.chown(path, uid, gid, follow_symlinks=False)
    for folder, dirs, files in os.walk(path, followlinks=False):
        for name in (*dirs, *files):
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)
