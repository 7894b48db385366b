"""Running at login on macOS: the launchd agent's plist, and installing, checking, removing it.

The plist template is filled with XML-escaped values, parsed back with ``plistlib`` and
compared with what was meant, so a path that a plist cannot hold is an error here and never a
broken agent. Installing writes the plist atomically and (re)loads it through ``Launchctl``.
"""

from __future__ import annotations

import os
import plistlib
import re
import sys
from pathlib import Path
from typing import Any, TextIO
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape

from sharpmld.cli.codes import RET_FAILURE, RET_NOT_FOUND, RET_OK
from sharpmld.cli.service import tcc
from sharpmld.cli.service.launchctl import Launchctl, Runner, run_command
from sharpmld.cli.service.templates import PLIST_TEMPLATE, fill, program_arguments, stop_timeout, template
from sharpmld.core import fsio
from sharpmld.core.config import Config
from sharpmld.core.errors import SharpmldError

DEFAULT_LABEL = "com.sharpml.sharpmld"
SYSTEM_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_STATUS_FIELDS = ("state", "pid", "last exit code")


def check_label(label: str) -> str:
    """A launchd label usable as a file name: reverse-DNS letters, digits, dots, dashes."""
    if not _LABEL.match(label):
        raise SharpmldError(f"invalid launchd label {label!r}; use e.g. {DEFAULT_LABEL}")
    return label


def plist_path(label: str = DEFAULT_LABEL) -> Path:
    """Where a user agent's plist lives: ``~/Library/LaunchAgents/<label>.plist``."""
    return Path.home() / "Library" / "LaunchAgents" / f"{check_label(label)}.plist"


def log_dir() -> Path:
    """Where the agent's stdout and stderr go: ``~/Library/Logs/sharpmld``."""
    return Path.home() / "Library" / "Logs" / "sharpmld"


def log_name(label: str) -> str:
    """``sharpmld`` for the default agent; an agent with another label logs under its label."""
    return "sharpmld" if label == DEFAULT_LABEL else check_label(label)


def render_plist(config: Config, python: str = sys.executable, label: str = DEFAULT_LABEL) -> bytes:
    """The agent's plist: the template filled, parsed back, checked and dumped canonically."""
    args = program_arguments(config, python)
    root = str(config.root.absolute())
    logs = log_dir()
    values = {
        "LABEL": check_label(label),
        "PYTHON": args[0],
        "ROOT": root,
        "EXIT_TIMEOUT": str(stop_timeout(config)),
        "LOG_DIR": str(logs),
        "LOG_NAME": log_name(label),
        "HOME": str(Path.home()),
        "PATH": f"{os.path.dirname(args[0])}:{SYSTEM_PATH}",
    }
    escaped = {name: escape(value) for name, value in values.items()}
    config_args = args[6:]  # after python -m sharpmld run --root ROOT: the config, if any
    escaped["CONFIG_ARGS"] = "".join(f"\t\t<string>{escape(a)}</string>\n" for a in config_args)
    text = fill(template(PLIST_TEMPLATE), escaped)
    try:
        data: dict[str, Any] = plistlib.loads(text.encode("utf-8"))
    except (ExpatError, ValueError, UnicodeError) as exc:
        raise SharpmldError(
            f"cannot write a launchd plist for these paths ({exc}); "
            f"a path holds characters a plist cannot hold: {args[1:]!r}"
        ) from None
    expected = {
        "Label": label,
        "ProgramArguments": args,
        "WorkingDirectory": root,
        "StandardOutPath": f"{logs}/{values['LOG_NAME']}.log",
        "StandardErrorPath": f"{logs}/{values['LOG_NAME']}.err.log",
    }
    for key, value in expected.items():
        if data.get(key) != value:
            raise SharpmldError(
                f"cannot write a launchd plist: {key} would read {data.get(key)!r} instead of "
                f"{value!r} (a path holds characters a plist cannot hold, e.g. a carriage return)"
            )
    return plistlib.dumps(data, fmt=plistlib.FMT_XML, sort_keys=True)


def install(
    config: Config,
    *,
    python: str = sys.executable,
    label: str = DEFAULT_LABEL,
    runner: Runner = run_command,
    macos: bool | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Write the agent's plist and (re)load it with ``launchctl bootstrap gui/$UID``."""
    out, err = out or sys.stdout, err or sys.stderr
    launchctl = Launchctl.find("install", err, runner, config)
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
    data = render_plist(config, python, label)
    target = plist_path(label)
    target.parent.mkdir(parents=True, exist_ok=True)
    log_dir().mkdir(parents=True, exist_ok=True)
    config.root.mkdir(parents=True, exist_ok=True)  # launchd refuses a missing WorkingDirectory
    fsio.write_bytes(target, data)
    os.chmod(target, 0o644)  # launchd ignores a plist that others may write

    service = launchctl.service(label)
    if launchctl.run("print", service).returncode == 0:
        args: tuple[str, ...] = ("bootout", service)  # reload, so that the new plist takes effect
        result = launchctl.run(*args)
        if result.returncode != 0 and not launchctl.not_loaded(result):
            return launchctl.failed(args, result)
    args = ("bootstrap", launchctl.domain, str(target))
    result = launchctl.run(*args)
    if result.returncode != 0:
        return launchctl.failed(args, result)
    out.write(
        f"installed {target}\n"
        f"sharpmld runs now and at every login, on {config.root}.\n"
        f"logs: {log_dir()}/{log_name(label)}.log (errors: {log_name(label)}.err.log)\n"
        "check it with `sharpmld launchd status`; remove it with `sharpmld launchd uninstall`\n"
    )
    return RET_OK


def uninstall(
    *,
    label: str = DEFAULT_LABEL,
    runner: Runner = run_command,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Stop and unload the agent (``launchctl bootout``) and remove its plist."""
    out, err = out or sys.stdout, err or sys.stderr
    launchctl = Launchctl.find("uninstall", err, runner)
    if launchctl is None:
        return RET_FAILURE
    target = plist_path(label)
    args = ("bootout", launchctl.service(label))
    result = launchctl.run(*args)
    if result.returncode != 0 and not launchctl.not_loaded(result):
        return launchctl.failed(args, result)
    existed = target.exists()
    target.unlink(missing_ok=True)
    if result.returncode == 0 or existed:
        out.write(f"stopped and removed {label}" + (f" ({target})" if existed else "") + "\n")
    else:
        out.write(f"{label} was not installed\n")
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
    result = launchctl.run("print", service)
    if result.returncode != 0:
        if target.exists():
            out.write(
                f"{label} is installed ({target}) but not loaded; `sharpmld launchd install` loads it\n"
            )
        else:
            out.write(f"{label} is not installed; `sharpmld launchd install` installs it\n")
        return RET_NOT_FOUND
    fields: dict[str, str] = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^\s*(state|pid|last exit code) = (.*)$", line)
        if match and match.group(1) not in fields:
            fields[match.group(1)] = match.group(2).strip()
    out.write(f"{label} is loaded ({service})\n")
    for key in _STATUS_FIELDS:
        if key in fields:
            out.write(f"  {key}: {fields[key]}\n")
    out.write(f"  plist: {target}\n  logs: {log_dir()}/{log_name(label)}.log\n")
    return RET_OK


def restart(
    *,
    label: str = DEFAULT_LABEL,
    runner: Runner = run_command,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Stop the running daemon gracefully and start it again (``launchctl kickstart -k``)."""
    out, err = out or sys.stdout, err or sys.stderr
    launchctl = Launchctl.find("restart", err, runner)
    if launchctl is None:
        return RET_FAILURE
    args = ("kickstart", "-k", launchctl.service(label))
    result = launchctl.run(*args)
    if result.returncode != 0:
        if launchctl.not_loaded(result):
            err.write(f"sharpmld: {label} is not loaded; `sharpmld launchd install` loads it\n")
            return RET_NOT_FOUND
        return launchctl.failed(args, result)
    out.write(f"restarted {label}\n")
    return RET_OK
