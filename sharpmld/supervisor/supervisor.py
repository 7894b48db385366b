"""The daemon's side of the worker: start it, watch it, time it out, restart it.

Lives in the daemon process and never imports torch. The worker runs in its own process group
so that a timeout or a memory overrun can kill it and anything it started with one ``killpg``.
Its exit status becomes the reason the job in flight failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from sharpmld.core import fsio
from sharpmld.core.config import Config
from sharpmld.core.units import MB
from sharpmld.protocol import EVENT_FD_ENV, JobRequest, LineReader, decode, encode

STOPPED = "stopped"
STARTING = "starting"
READY = "ready"
BUSY = "busy"
UNAVAILABLE = "unavailable"
BACKOFF = "backoff"

MAX_BACKOFF = 60.0
START_FAILURES_BEFORE_UNAVAILABLE = 5


@dataclass
class WorkerInfo:
    """What the worker said about itself when it became ready."""

    device: str = ""
    torch: str = ""
    load_seconds: float = 0.0
    pid: int = 0


class Supervisor:
    """One worker subprocess and its lifecycle: ``start``, ``poll``, ``check``, ``stop``."""

    def __init__(self, config: Config, package_dir: Path | None = None) -> None:
        self.config = config
        self.state = STOPPED
        self.info = WorkerInfo()
        self.unavailable_reason = ""
        self._notices: list[dict[str, Any]] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._events_fd: int | None = None
        self._reader = LineReader()
        self._next_start = 0.0
        self._started_at = 0.0
        self._job_started = 0.0
        self._last_progress = 0.0
        self._start_failures = 0
        self._crashes = 0
        self._images_served = 0
        self.package_dir = package_dir
        self._rss = 0
        self._rss_at = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def fileno(self) -> int | None:
        """The events pipe, for the daemon's select()."""
        return self._events_fd

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, now: float) -> None:
        """Launch a worker; it reports ``ready`` or ``unavailable`` on its events pipe."""
        cfg = self.config
        settings = {
            "factory": cfg.get("model", "factory"),
            "checkpoint": str(cfg.checkpoint),
            "device": cfg.get("model", "device"),
            "daemon_pid": os.getpid(),
            "limits": self._limits(),
            "max_memory_mb": cfg.get("worker", "max_memory_mb"),
        }
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        env[EVENT_FD_ENV] = str(write_fd)
        env["PYTHONUNBUFFERED"] = "1"
        if cfg.get("model", "device") in ("auto", "mps"):
            env.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
        if self.package_dir is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(self.package_dir), env.get("PYTHONPATH", "")) if p
            )
        python = cfg.worker_python or sys.executable
        try:
            prefix = sandbox_prefix(bool(cfg.get("worker", "sandbox")))
            identity = worker_identity(str(cfg.get("worker", "user")))
            self._proc = subprocess.Popen(
                [*prefix, python, "-m", "sharpmld.worker.main", json.dumps(settings)],
                stdin=subprocess.PIPE,
                pass_fds=(write_fd,),
                env=env,
                start_new_session=True,
                close_fds=True,
                **identity,
            )
        except (OSError, ValueError, KeyError) as exc:
            os.close(read_fd)
            os.close(write_fd)
            reason = getattr(exc, "strerror", None) or str(exc)
            self._mark_unavailable(now, f"cannot start the worker with {python}: {reason}")
            return
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self._events_fd = read_fd
        self._reader = LineReader()
        self.state = STARTING
        self._started_at = now

    def _limits(self) -> dict[str, int]:
        return {
            "file_size_mb": int(self.config.get("worker", "max_file_size_mb")),
            "open_files": int(self.config.get("worker", "max_open_files")),
            "cpu_seconds": int(self.config.get("worker", "max_cpu_seconds")),
            "address_space_mb": int(self.config.get("worker", "max_address_space_mb")),
        }

    def send_job(self, request: JobRequest, now: float) -> None:
        """Hand a job to a ready worker."""
        if self.state != READY or self._proc is None or self._proc.stdin is None:
            raise RuntimeError(f"worker is {self.state}, not ready")
        self.state = BUSY
        self._job_started = self._last_progress = now
        try:
            self._proc.stdin.write(encode(request.to_message()))
            self._proc.stdin.flush()
        except OSError:
            pass  # the worker died; its pipe's EOF reports it

    def read_events(self, now: float) -> list[dict[str, Any]]:
        """Drain the events pipe; EOF means the worker is gone, reported as ``worker_lost``."""
        if self._events_fd is None:
            return []
        events: list[dict[str, Any]] = []
        eof = False
        while self._events_fd is not None:
            try:
                chunk = os.read(self._events_fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                eof = True
                break
            try:
                lines = self._reader.feed(chunk)
            except ValueError:
                events.append(self._lose(now, "crash", "the worker sent an oversized message"))
                return events
            for line in lines:
                with contextlib.suppress(ValueError):
                    events.append(self._on_event(decode(line), now))
        if eof:
            events.append(self._on_exit(now))
        events.extend(self._notices)
        self._notices.clear()
        return events

    def _on_event(self, event: dict[str, Any], now: float) -> dict[str, Any]:
        kind = event.get("ev")
        if kind == "ready":
            self.state = READY
            self._start_failures = 0
            self.unavailable_reason = ""
            self.info = WorkerInfo(
                device=str(event.get("device", "")),
                torch=str(event.get("torch", "")),
                load_seconds=float(event.get("load_seconds", 0.0)),
                pid=int(event.get("pid", 0)),
            )
        elif kind == "unavailable":
            self._mark_unavailable(now, str(event.get("message", "engine unavailable")))
        elif kind in ("image_started", "image_done"):
            self._last_progress = now
            if kind == "image_done" and event.get("ok"):
                self._images_served += 1
        elif kind == "job_done":
            self._crashes = 0
            self.state = READY
            limit = int(self.config.get("worker", "max_images_per_worker"))
            if limit and self._images_served >= limit:
                self._recycle(now)
        return event

    def _mark_unavailable(self, now: float, reason: str) -> None:
        self.unavailable_reason = reason
        self._reap(force=True)
        self.state = UNAVAILABLE
        self._next_start = now + float(self.config.get("worker", "engine_retry_seconds"))

    def _on_exit(self, now: float) -> dict[str, Any]:
        code = self._reap(force=False)
        if self.state == UNAVAILABLE:
            return {"ev": "worker_exit", "code": code}
        detail = describe_exit(code)
        if self.state == STARTING:
            self._start_failures += 1
            if self._start_failures >= START_FAILURES_BEFORE_UNAVAILABLE:
                self._mark_unavailable(
                    now,
                    f"the worker failed to start {self._start_failures} times in a row; last: {detail}",
                )
                return {"ev": "unavailable", "message": self.unavailable_reason}
        return self._lose(now, "crash", detail, already_reaped=True)

    def check(self, now: float) -> list[dict[str, Any]]:
        """Time-based duties: start or restart when due, enforce time and memory limits."""
        events: list[dict[str, Any]] = []
        if self.state in (STOPPED, BACKOFF, UNAVAILABLE) and now >= self._next_start:
            self.start(now)
        elif self.state == STARTING:
            if now - self._started_at > float(self.config.get("worker", "start_timeout_seconds")):
                events.append(self._lose(now, "timeout", "the model took too long to load"))
        elif self.state == BUSY:
            image_limit = float(self.config.get("worker", "image_timeout_seconds"))
            job_limit = float(self.config.get("worker", "job_timeout_seconds"))
            if now - self._last_progress > image_limit:
                events.append(self._lose(now, "timeout", f"an image took over {image_limit:g} s"))
            elif now - self._job_started > job_limit:
                events.append(self._lose(now, "timeout", f"the job took over {job_limit:g} s"))
            else:
                over = self._memory_over()
                if over:
                    events.append(self._lose(now, "memory", over))
        return events

    def memory_bytes(self, max_age: float = 1.0) -> int:
        """Resident bytes of the worker's process tree, sampled at most once per ``max_age``."""
        now = time.monotonic()
        if now - self._rss_at > max_age:
            self._rss = process_tree_rss(self._proc.pid) if self._proc is not None else 0
            self._rss_at = now
        return self._rss

    def _memory_over(self) -> str:
        limit_mb = float(self.config.get("worker", "max_memory_mb"))
        if not limit_mb or self._proc is None:
            return ""
        used = self.memory_bytes(max_age=0.5)
        if used > limit_mb * MB:
            return f"the worker used {used / MB:.0f} MB, over the {limit_mb:g} MB limit"
        return ""

    def _lose(self, now: float, reason: str, detail: str, already_reaped: bool = False) -> dict[str, Any]:
        was_busy = self.state == BUSY
        if not already_reaped:
            self._reap(force=True)
        self._crashes += 1
        self.state = BACKOFF
        self._next_start = now + min(MAX_BACKOFF, 2.0 ** min(self._crashes - 1, 6))
        return {"ev": "worker_lost", "reason": reason, "detail": detail, "busy": was_busy}

    def _recycle(self, now: float) -> None:
        self.stop(grace=10.0)
        self._notices.append({"ev": "worker_recycled", "images": self._images_served})
        self._images_served = 0
        self.state = STOPPED
        self._next_start = now

    def stop(self, grace: float = 10.0) -> None:
        """Ask the worker to exit, then kill its process group if it does not."""
        proc = self._proc
        if proc is not None and proc.poll() is None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.write(encode({"op": "stop"}))
                proc.stdin.flush()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace if self.state != BUSY else 0.1)
        self._reap(force=True)
        self.state = STOPPED

    def _reap(self, *, force: bool) -> int | None:
        """Collect the worker (killing its group first when ``force``); return its exit code."""
        proc, self._proc = self._proc, None
        if self._events_fd is not None:
            os.close(self._events_fd)
            self._events_fd = None
        if proc is None:
            return None
        if force:
            kill_group(proc)
        with contextlib.suppress(OSError):
            if proc.stdin:
                proc.stdin.close()
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill_group(proc, sig=signal.SIGKILL)
            return proc.wait()


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


def sandbox_prefix(enabled: bool) -> list[str]:
    """The command that runs the worker without network access, or [] when not asked for.

    Linux: a new, empty network namespace (``unshare``); macOS: a sandbox profile that denies
    the network (``sandbox-exec``). Asked for but impossible is an error, never a silent no-op.
    """
    if not enabled:
        return []
    if sys.platform == "darwin":
        tool = shutil.which("sandbox-exec")
        if tool:
            return [tool, "-p", "(version 1)(allow default)(deny network*)"]
    elif tool := shutil.which("unshare"):
        if os.geteuid() == 0:
            return [tool, "--net"]
        return [tool, "--user", "--map-current-user", "--net"]
    raise ValueError("worker.sandbox is on but no sandbox tool (unshare / sandbox-exec) exists")


def worker_identity(user: str) -> dict[str, Any]:
    """Popen arguments that run the worker as ``user`` (the daemon must be root to switch)."""
    if not user:
        return {}
    if os.geteuid() != 0:
        raise ValueError(f"worker.user = {user!r} needs the daemon to run as root")
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, wait: float = 3.0) -> None:
    """TERM the worker's process group, then KILL it; ESRCH means it is already gone."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def process_tree_rss(pid: int) -> int:
    """Resident bytes of a process and its children (0 if it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += int(p.memory_info().rss)
    return total


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
