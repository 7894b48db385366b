"""Running at login on macOS: installing, checking, restarting and removing the launchd agent.

Every action goes through ``Launchctl``; the waits launchd's asynchronous stops need are in
``waiting`` and take an injected clock. The plist itself is ``plist``'s job.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from sharpmld.cli.codes import RET_FAILURE, RET_NOT_FOUND, RET_OK
from sharpmld.cli.service import tcc
from sharpmld.cli.service.launchctl import EIO, Launchctl, Runner, run_command
from sharpmld.cli.service.plist import (
    check_label,
    log_dir,
    log_name,
    plist_path,
    render_plist,
)
from sharpmld.cli.service.roles import DAEMON, DEFAULT_LABEL, Role
from sharpmld.cli.service.systemd import role_flags
from sharpmld.cli.service.templates import MIN_STOP_SECONDS, stop_timeout
from sharpmld.cli.service.waiting import (
    BOOTSTRAP_RETRY_SECONDS,
    Clock,
    SystemClock,
    bootout_until_gone,
    bootstrap_retrying,
    wait_for_stop,
)
from sharpmld.core import fsio
from sharpmld.core.config import Config

__all__ = [
    "DEFAULT_LABEL",
    "check_label",
    "install",
    "log_dir",
    "log_name",
    "plist_path",
    "render_plist",
    "restart",
    "status",
    "uninstall",
]

WAIT_MARGIN_SECONDS = 10
DEFAULT_STOP_SECONDS = MIN_STOP_SECONDS  # the drain limit when no configuration loads
"""Added to the agent's ExitTimeOut when waiting for it to stop: launchd's own SIGKILL comes first."""

_STATUS_FIELDS = ("state", "pid", "last exit code")


def install(
    config: Config,
    *,
    python: str = sys.executable,
    role: Role = DAEMON,
    label: str | None = None,
    runner: Runner = run_command,
    clock: Clock | None = None,
    macos: bool | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Write the agent's plist and (re)load it: bootout (drained), enable, bootstrap."""
    out, err, clock = out or sys.stdout, err or sys.stderr, clock or SystemClock()
    label = role.label if label is None else label
    launchctl = Launchctl.find("install", err, runner, config, role)
    if launchctl is None:
        return RET_FAILURE
    mac = sys.platform == "darwin" if macos is None else macos
    protected = tcc.protected_paths(config, python) if mac else []
    if protected:
        err.write(tcc.refusal(protected))
        return RET_FAILURE
    if mac and os.geteuid() == 0:
        err.write(
            "sharpmld: do not install the agent as root (sudo): it is a per-user LaunchAgent; "
            "run `sharpmld launchd install` as the user who is logged in at the Mac's screen\n"
        )
        return RET_FAILURE
    data = render_plist(config, python, label, role)
    target = plist_path(label)
    target.parent.mkdir(parents=True, exist_ok=True)
    log_dir().mkdir(parents=True, exist_ok=True)
    config.root.mkdir(parents=True, exist_ok=True)
    fsio.write_bytes(target, data)
    os.chmod(target, 0o644)  # launchd ignores a plist that others may write

    service = launchctl.service(label)
    limit = stop_timeout(config) + WAIT_MARGIN_SECONDS
    replaced = launchctl.state(service) is not None
    if replaced:  # reload, so that the new plist takes effect
        out.write(f"stopping the running {label} to load the new plist…\n")
        gone = bootout_until_gone(launchctl, service, limit, clock, out)
        if gone.outcome == "failed":
            return launchctl.failed(("bootout", service), gone.result)
        if gone.outcome == "draining":
            err.write(
                f"sharpmld: {label} is still finishing its job after {limit:g} s; the new plist is "
                "written but not loaded. Run `sharpmld launchd install` again once "
                "`sharpmld launchd status` says it is not loaded.\n"
            )
            return RET_FAILURE
    # A disabled service cannot be bootstrapped (launchctl(1), enable); Homebrew's
    # ``launchctl_load`` (Library/Homebrew/services/cli.rb) runs ``enable`` first too.
    result = launchctl.run("enable", service)
    if result.returncode != 0:
        return launchctl.failed(("enable", service), result)
    retry_for = BOOTSTRAP_RETRY_SECONDS if replaced else 0.0
    result = bootstrap_retrying(launchctl, str(target), retry_for, clock, out)
    if result.returncode != 0:
        hint = None
        if replaced and result.returncode == EIO:
            hint = (
                f"launchd was still removing the previous {label} after {retry_for:g} s; "
                "run `sharpmld launchd install` again in a minute."
            )
        return launchctl.failed(("bootstrap", launchctl.domain, str(target)), result, hint)
    flags = role_flags(role)
    out.write(
        f"installed {target}\n"
        f"{role.runs} runs now and at every login, on {config.root}.\n"
        f"logs: {log_dir()}/{log_name(label)}.log (errors: {log_name(label)}.err.log), "
        "capped when it starts\n"
        f"check it with `sharpmld launchd status{flags}`; "
        f"remove it with `sharpmld launchd uninstall{flags}`\n"
    )
    return RET_OK


def uninstall(
    config: Config | None = None,
    *,
    label: str = DEFAULT_LABEL,
    runner: Runner = run_command,
    clock: Clock | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Stop and unload the agent (``launchctl bootout``, drained) and remove its plist.

    ``config`` gives the drain limit; without one (a configuration that no longer loads must
    not keep an agent installed) the default shutdown grace bounds the wait.
    """
    out, err, clock = out or sys.stdout, err or sys.stderr, clock or SystemClock()
    launchctl = Launchctl.find("uninstall", err, runner)
    if launchctl is None:
        return RET_FAILURE
    target = plist_path(label)
    service = launchctl.service(label)
    limit = (DEFAULT_STOP_SECONDS if config is None else stop_timeout(config)) + WAIT_MARGIN_SECONDS
    gone = bootout_until_gone(launchctl, service, limit, clock, out)
    if gone.outcome == "failed":
        return launchctl.failed(("bootout", service), gone.result)
    existed = target.exists()
    target.unlink(missing_ok=True)
    if gone.outcome == "draining":
        err.write(
            f"sharpmld: {label} is still finishing its job after {limit:g} s; its plist is removed, "
            "so launchd will not start it again, and it stops once the job is done\n"
        )
        return RET_FAILURE
    if launchctl.not_loaded(gone.result) and not existed:
        out.write(f"{label} was not installed\n")
    else:
        out.write(f"stopped and removed {label}" + (f" ({target})" if existed else "") + "\n")
    return RET_OK


def status(
    *,
    label: str = DEFAULT_LABEL,
    runner: Runner = run_command,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Whether the agent is loaded, its state, pid and last exit code (``launchctl print``)."""
    out, err = out or sys.stdout, err or sys.stderr
    launchctl = Launchctl.find("status", err, runner)
    if launchctl is None:
        return RET_FAILURE
    target = plist_path(label)
    service = launchctl.service(label)
    state = launchctl.state(service)
    if state is None:
        if target.exists():
            out.write(
                f"{label} is installed ({target}) but not loaded; `sharpmld launchd install` loads it\n"
            )
        else:
            out.write(f"{label} is not installed; `sharpmld launchd install` installs it\n")
        return RET_NOT_FOUND
    out.write(f"{label} is loaded ({service})\n")
    for key in _STATUS_FIELDS:
        if key in state.fields:
            out.write(f"  {key}: {state.fields[key]}\n")
    out.write(f"  plist: {target}\n  logs: {log_dir()}/{log_name(label)}.log\n")
    return RET_OK


def restart(
    config: Config,
    *,
    label: str = DEFAULT_LABEL,
    runner: Runner = run_command,
    clock: Clock | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """SIGTERM, wait for the job in flight to finish (bounded), then start it again.

    ``kickstart -k`` alone would SIGKILL the daemon (launchctl(1): "-k: If the service is
    already running, kill the running instance before restarting the service", with SIGKILL
    in practice), losing the job in flight; it is the fallback only when SIGTERM did not stop
    the daemon within the agent's ExitTimeOut plus a margin.
    """
    out, err, clock = out or sys.stdout, err or sys.stderr, clock or SystemClock()
    launchctl = Launchctl.find("restart", err, runner)
    if launchctl is None:
        return RET_FAILURE
    service = launchctl.service(label)
    state = launchctl.state(service)
    if state is None:
        err.write(f"sharpmld: {label} is not loaded; `sharpmld launchd install` loads it\n")
        return RET_NOT_FOUND
    args: tuple[str, ...] = ("kickstart", service)
    if state.running:
        limit = stop_timeout(config) + WAIT_MARGIN_SECONDS
        out.write(f"stopping {label} (pid {state.pid}); waiting at most {limit:g} s for its job…\n")
        out.flush()
        result = launchctl.run("kill", "SIGTERM", service)
        if result.returncode != 0 and not launchctl.not_loaded(result):
            return launchctl.failed(("kill", "SIGTERM", service), result)
        if not wait_for_stop(launchctl, service, state.pid, limit, clock):
            err.write(
                f"sharpmld: {label} did not stop within {limit:g} s of SIGTERM; "
                "killing it (kickstart -k: SIGKILL; the job in flight is recovered when it starts again)\n"
            )
            args = ("kickstart", "-k", service)
    result = launchctl.run(*args)
    if result.returncode != 0:
        if launchctl.not_loaded(result):
            err.write(f"sharpmld: {label} is not loaded; `sharpmld launchd install` loads it\n")
            return RET_NOT_FOUND
        return launchctl.failed(args, result)
    out.write(f"restarted {label}\n")
    return RET_OK
