"""launchd's asynchronous stops, stepped with a fake clock: restart, reinstall, and the logs.

``FakeLaunchd`` is a runner for ``Launchctl`` that behaves as launchctl(1) and launchd are
documented to, and as Homebrew's ``brew services`` (Library/Homebrew/services/cli.rb) copes
with them: ``kill SIGTERM`` returns at once and the job exits when it has drained;
``kickstart -k`` kills it (SIGKILL) and starts it again; ``bootout`` answers 36
(EINPROGRESS) while the job is still exiting; a ``bootstrap`` right after a bootout answers 5
(EIO) for a few seconds; a disabled service answers 5 to every bootstrap until ``enable``.
Nothing here sleeps: the clock moves when the code under test sleeps.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sharpmld.cli.codes import RET_FAILURE, RET_OK
from sharpmld.cli.service import launchd, logcap
from sharpmld.core import config

UID = "501"
SERVICE = f"gui/{UID}/{launchd.DEFAULT_LABEL}"


@dataclass
class FakeClock:
    now: float = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeLaunchd:
    clock: FakeClock
    loaded: bool = True
    running: bool = True
    pid: int = 4242
    drain_seconds: float = 20.0  # how long the daemon takes to finish its job after SIGTERM
    eio_after_bootout: float = 3.0  # how long a bootstrap fails with EIO after a bootout
    disabled: bool = False
    calls: list[tuple[str, ...]] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)
    _exits_at: float | None = None
    _booted_out_at: float | None = None

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        args = tuple(argv[1:])
        self.calls.append(args)
        self._settle()
        verb = args[0]
        if verb == "print":
            if not self.loaded and self._exits_at is None:
                return self._answer(113, err="Could not find service in domain for port")
            state = "running" if self.running else "not running"
            pid = f"\n    pid = {self.pid}" if self.running else ""
            return self._answer(0, f"{args[1]} = {{\n    state = {state}{pid}\n    last exit code = 0\n}}\n")
        if verb == "kill":
            self.signals.append(args[1])
            self._exits_at = self.clock.now + self.drain_seconds
            return self._answer(0)
        if verb == "kickstart":
            if "-k" in args:
                self.signals.append("SIGKILL")
                self._exits_at = None
            self.running, self.pid = True, self.pid + 1
            return self._answer(0)
        if verb == "bootout":
            if not self.loaded and self._exits_at is not None:  # still exiting
                return self._answer(36, err="Boot-out failed: 36: Operation now in progress")
            if not self.loaded:
                return self._answer(3, err="Boot-out failed: 3: No such process")
            if self._exits_at is None:
                self._exits_at = self.clock.now + self.drain_seconds
            self.loaded = False
            self._booted_out_at = self.clock.now
            return self._answer(36, err="Boot-out failed: 36: Operation now in progress")
        if verb == "enable":
            self.disabled = False
            return self._answer(0)
        if verb == "bootstrap":
            early = (
                self._booted_out_at is not None
                and self.clock.now < self._booted_out_at + self.eio_after_bootout
            )
            if self.disabled or early or self._exits_at is not None:
                return self._answer(5, err="Bootstrap failed: 5: Input/output error")
            self.loaded = self.running = True
            return self._answer(0)
        raise AssertionError(f"unexpected launchctl {args}")

    def _settle(self) -> None:
        if self._exits_at is not None and self.clock.now >= self._exits_at:
            self.running, self._exits_at = False, None

    @staticmethod
    def _answer(code: int, out: str = "", err: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(["launchctl"], code, out, err)


@pytest.fixture
def on_a_mac(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> config.Config:
    """A HOME, a launchctl on PATH (the runner answers for it), uid 501, a 30 s drain limit."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "launchctl").write_text("#!/bin/sh\nexit 99\n")
    (bin_dir / "launchctl").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr("os.getuid", lambda: int(UID))
    monkeypatch.setattr("os.geteuid", lambda: int(UID))  # a user, not root
    root = tmp_path / "root"
    root.mkdir()
    (root / config.CONFIG_NAME).write_text("[queue]\nshutdown_grace_seconds = 30\n")
    return config.load(root=root, environ={})


def test_restart_sends_sigterm_and_waits_for_the_job_instead_of_killing_it(on_a_mac: config.Config) -> None:
    clock = FakeClock()
    fake = FakeLaunchd(clock, drain_seconds=20.0)
    out = io.StringIO()
    assert launchd.restart(on_a_mac, runner=fake, clock=clock, out=out, err=io.StringIO()) == RET_OK
    assert fake.signals == ["SIGTERM"], "kickstart -k SIGKILLs the daemon and its job in flight"
    assert ("kickstart", SERVICE) in fake.calls and ("kickstart", "-k", SERVICE) not in fake.calls
    assert 20.0 <= clock.now < 30.0, "it waited for the drain, and no longer"
    assert "waiting" in out.getvalue()


def test_restart_kills_only_after_the_drain_limit(on_a_mac: config.Config) -> None:
    clock = FakeClock()
    fake = FakeLaunchd(clock, drain_seconds=10_000.0)  # a daemon that ignores SIGTERM
    err = io.StringIO()
    assert launchd.restart(on_a_mac, runner=fake, clock=clock, out=io.StringIO(), err=err) == RET_OK
    assert fake.signals == ["SIGTERM", "SIGKILL"]
    assert clock.now >= 30.0, "SIGKILL came before the configured grace was over"
    assert "did not stop" in err.getvalue()


def test_reinstall_waits_for_a_draining_bootout_and_retries_an_early_bootstrap(
    on_a_mac: config.Config,
) -> None:
    clock = FakeClock()
    fake = FakeLaunchd(clock, drain_seconds=12.0, eio_after_bootout=3.0)
    out, err = io.StringIO(), io.StringIO()
    code = launchd.install(on_a_mac, runner=fake, clock=clock, macos=True, out=out, err=err)
    assert code == RET_OK, err.getvalue()
    assert fake.loaded and fake.running
    assert [c[0] for c in fake.calls].count("bootout") > 1, "EINPROGRESS was taken as final"
    assert fake.calls.index(("enable", SERVICE)) < fake.calls.index(
        next(c for c in fake.calls if c[0] == "bootstrap")
    )
    assert "waiting for the running job to finish" in out.getvalue()


def test_install_turns_a_switched_off_background_item_back_on(on_a_mac: config.Config) -> None:
    clock = FakeClock()
    fake = FakeLaunchd(clock, loaded=False, running=False, disabled=True)
    err = io.StringIO()
    code = launchd.install(on_a_mac, runner=fake, clock=clock, macos=True, out=io.StringIO(), err=err)
    assert code == RET_OK, err.getvalue()
    assert fake.loaded


def test_a_job_still_draining_at_the_limit_is_said_plainly(on_a_mac: config.Config) -> None:
    clock = FakeClock()
    fake = FakeLaunchd(clock, drain_seconds=10_000.0)
    err = io.StringIO()
    code = launchd.install(on_a_mac, runner=fake, clock=clock, macos=True, out=io.StringIO(), err=err)
    assert code == RET_FAILURE
    assert "still finishing its job" in err.getvalue() and "launchd install` again" in err.getvalue()
    assert not any(c[0] == "bootstrap" for c in fake.calls)


def test_the_agents_logs_are_capped_when_the_daemon_starts(tmp_path: Path) -> None:
    base = tmp_path / "sharpmld"
    log, errors = Path(f"{base}.log"), Path(f"{base}.err.log")
    log.write_bytes(b"old line\n" * 1000 + b"the newest line\n")
    errors.write_bytes(b"small\n")
    capped = logcap.cap_at_start({logcap.LOG_BASE_ENV: str(base)}, limit=100)
    assert capped == [log]
    assert log.stat().st_size == 0, "truncated in place: launchd's appending descriptor stays valid"
    kept = Path(f"{log}.1").read_bytes()
    assert len(kept) == 100 and kept.endswith(b"the newest line\n")
    assert errors.read_bytes() == b"small\n"
    assert logcap.cap_at_start({}, limit=100) == [], "outside launchd nothing is touched"


def test_uninstall_waits_for_a_draining_bootout_instead_of_failing(on_a_mac: config.Config) -> None:
    """launchctl(1) answers 36 (EINPROGRESS) to a bootout while the job is still exiting."""
    clock = FakeClock()
    fake = FakeLaunchd(clock, drain_seconds=12.0)
    plist = launchd.plist_path(launchd.DEFAULT_LABEL)
    plist.parent.mkdir(parents=True)
    plist.write_bytes(launchd.render_plist(on_a_mac))
    out, err = io.StringIO(), io.StringIO()
    assert launchd.uninstall(on_a_mac, runner=fake, clock=clock, out=out, err=err) == RET_OK, err.getvalue()
    assert not plist.exists() and not fake.loaded and not fake.running
    assert 12.0 <= clock.now < 40.0, "it waited for the drain, and no longer"
    assert "stopped and removed" in out.getvalue() and "waiting for the running job" in out.getvalue()


def test_uninstall_of_a_job_that_will_not_finish_says_so(on_a_mac: config.Config) -> None:
    clock = FakeClock()
    fake = FakeLaunchd(clock, drain_seconds=10_000.0)
    err = io.StringIO()
    assert launchd.uninstall(on_a_mac, runner=fake, clock=clock, out=io.StringIO(), err=err) == RET_FAILURE
    assert "still finishing its job" in err.getvalue()
    assert clock.now < 100.0


def test_uninstall_of_an_agent_never_installed(on_a_mac: config.Config) -> None:
    fake = FakeLaunchd(FakeClock(), loaded=False, running=False)
    out = io.StringIO()
    assert launchd.uninstall(None, runner=fake, clock=FakeClock(), out=out, err=io.StringIO()) == RET_OK
    assert "was not installed" in out.getvalue()
