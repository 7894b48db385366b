"""Running the real daemon and CLI as subprocesses on a temporary root."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.support import roots

REPO = Path(__file__).resolve().parents[2]
SUPPORT = Path(__file__).resolve().parent


def env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a daemon or CLI under test: the tiny model importable, no tty."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("SHARPMLD_")}
    out["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), str(REPO)])
    out["PYTHONUNBUFFERED"] = "1"
    out.update(extra or {})
    return out


def write_config(root: Path, checkpoint: Path, **sections: dict[str, Any]) -> Path:
    """A fast configuration using the tiny model; ``sections`` override or add keys."""
    fast: dict[str, dict[str, Any]] = {
        "intake": {"settle_seconds": 0.5, "scan_interval_seconds": 1.0},
        "worker": {"engine_retry_seconds": 1.0},
        "queue": {"shutdown_grace_seconds": 10.0},
        "log": {"level": "debug"},
    }
    for name, values in sections.items():
        fast[name] = {**fast.get(name, {}), **values}
    return roots.write_config(root, checkpoint, **fast)


def cli(
    root: Path, *args: str, timeout: float = 60, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``sharpmld ARGS --root ROOT`` (root only for the commands that take it)."""
    command = [sys.executable, "-m", "sharpmld", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env(extra_env), cwd=root.parent
    )


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str | Callable[[], str], interval: float = 0.05
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what if isinstance(what, str) else what()}"
            )
        time.sleep(interval)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One scrape of a daemon's /metrics: (sample name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def metric(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """One sample of a scrape; 0 when absent, as for a labelled family with no child yet."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def jobs(root: Path, state: str) -> list[Path]:
    """Job folders in one state, sorted."""
    folder = root / state
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def as_user(user: str | None) -> dict[str, Any]:
    """The ``Popen`` arguments that run a child as ``user`` with only that user's group."""
    if user is None:
        return {}
    import pwd

    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def cannot_run_as(user: str) -> str:
    """Why a test cannot run the daemon as ``user`` here ("" if it can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "switching to another user needs the suite to run as root"
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import sharpmld.cli.main"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env(),
            cwd="/",
            **as_user(user),
        )
    except (KeyError, OSError) as exc:
        return f"cannot start a process as {user}: {exc}"
    if probe.returncode != 0:
        return f"{user} cannot run this interpreter or import sharpmld: {probe.stderr.strip()[-200:]}"
    return ""


DAC_CAPS = "-dac_override,-dac_read_search,-fowner"
"""The capabilities that let root ignore permission bits (capabilities(7)), in setpriv(1)'s
``--bounding-set``/``--inh-caps`` syntax."""


def without_dac() -> list[str]:
    """The argv prefix that runs a child of root as uid 0 minus ``DAC_CAPS``.

    Following setpriv(1) and capabilities(7): on execve a uid-0 process gets its bounding set
    as permitted and effective capabilities, so removing these from the bounding set (and the
    inheritable set) leaves a root child that obeys mode bits like an ordinary user, while it
    still runs an interpreter under a private /root (which it owns).
    """
    return ["setpriv", f"--inh-caps={DAC_CAPS}", f"--bounding-set={DAC_CAPS}", "--"]


def permission_bits_prefix() -> tuple[list[str] | None, str]:
    """How to start a child for which permission bits apply: an argv prefix, or None and why not.

    Not root: nothing to do. Root: ``without_dac``, checked by having the child import sharpmld
    and fail to open a mode-000 file (a kernel or container that refuses the drop says so here).
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return [], ""
    if shutil.which("setpriv") is None:
        return None, "setpriv (util-linux) is not installed"
    with tempfile.TemporaryDirectory() as folder:
        locked = Path(folder) / "locked"
        locked.write_text("x")
        locked.chmod(0)
        code = "import sys, sharpmld.cli.main; open(sys.argv[1]).read()"
        try:
            probe = subprocess.run(
                [*without_dac(), sys.executable, "-c", code, str(locked)],
                capture_output=True,
                text=True,
                timeout=60,
                env=env(),
            )
        except OSError as exc:
            return None, f"cannot run setpriv: {exc}"
    if probe.returncode == 0:
        return None, "root without DAC capabilities still reads a mode-000 file here"
    if "PermissionError" not in probe.stderr:
        return None, f"setpriv cannot drop the DAC capabilities: {probe.stderr.strip()[-200:]}"
    return without_dac(), ""


class Daemon:
    """``sharpmld run`` as a child process, with its log captured to a file."""

    def __init__(
        self,
        root: Path,
        *args: str,
        extra_env: dict[str, str] | None = None,
        user: str | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        """``user`` runs the daemon as that user (the suite must be root; see ``as_user``);
        ``prefix`` goes before the command (``without_dac``, say)."""
        self.root = root
        self.log_path = root.parent / f"daemon-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "sharpmld", "run", "--root", str(root), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env(extra_env),
            cwd=root.parent,
            **as_user(user),
        )

    def lines(self) -> list[dict[str, Any]]:
        """The JSON log lines so far (non-JSON lines, e.g. from the worker, are skipped)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                out.append(item)
        return out

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == event]

    def wait_logged(self, event: str, timeout: float = 60, count: int = 1) -> list[dict[str, Any]]:
        return wait_for(
            lambda: len(self.logged(event)) >= count and self.logged(event),
            timeout,
            lambda: f"{count} x log event {event!r}\n--- log ---\n{self.text()[-3000:]}",
        )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pid(self) -> int:
        """The worker's pid, once the daemon's status file says the engine is up."""

        def engine_up() -> bool:
            for path in (self.root / ".sharpmld").glob(f"daemon-*-{self.proc.pid}.json"):
                try:
                    return json.loads(path.read_text())["engine"] in ("ready", "busy")
                except (OSError, ValueError, KeyError):
                    return False
            return False

        wait_for(engine_up, 60, lambda: f"the engine to be ready\n{self.text()[-2000:]}")
        return int(self._child_pids()[0])

    def status(self) -> dict[str, Any] | None:
        """The daemon's status file (what ``sharpmld status`` reads), once it exists."""
        for path in (self.root / ".sharpmld").glob(f"daemon-*-{self.proc.pid}.json"):
            try:
                return dict(json.loads(path.read_text()))
            except (OSError, ValueError):
                return None
        return None

    def metrics_port(self, timeout: float = 30) -> int:
        """The port the daemon serves /metrics on, from its status file."""
        return int(
            wait_for(
                lambda: (self.status() or {}).get("metrics_port"),
                timeout,
                lambda: f"the daemon's metrics port\n{self.text()[-2000:]}",
            )
        )

    def _child_pids(self) -> list[int]:
        import psutil

        return [c.pid for c in psutil.Process(self.proc.pid).children()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log.close()
        return code

    def wait(self, timeout: float = 120) -> int:
        """Wait for a ``--burst`` daemon to exit by itself."""
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._log.close()
