"""Running sharpmld at login: a launchd agent on macOS, a systemd user unit on Linux.

The templates ship as package data in ``sharpmld/cli/templates/``. Rendering fills their
``{{NAME}}`` placeholders (escaped for XML, or quoted for systemd), and the plist is parsed
back with ``plistlib`` and compared with what was meant, so a path that a plist cannot hold is
an error here and never a broken agent. Installing writes the plist atomically and drives
``launchctl`` through an injectable runner (tests put a fake ``launchctl`` first on PATH).

No torch, no numpy: the CLI imports this module for ``sharpmld launchd``.
"""

from __future__ import annotations

import math
import os
import plistlib
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape

from sharpmld.cli.codes import RET_FAILURE, RET_NOT_FOUND, RET_OK, RET_USAGE
from sharpmld.core import fsio
from sharpmld.core.config import Config
from sharpmld.core.errors import SharpmldError

DEFAULT_LABEL = "com.sharpml.sharpmld"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
PLIST_TEMPLATE = TEMPLATE_DIR / "com.sharpml.sharpmld.plist"
SYSTEMD_TEMPLATE = TEMPLATE_DIR / "sharpmld.service"
SYSTEMD_UNIT = "sharpmld.service"
SYSTEMD_DIR = "~/.config/systemd/user"

MIN_STOP_SECONDS = 60
STOP_MARGIN_SECONDS = 30
SYSTEM_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
# Where macOS privacy protection (TCC) blocks a background process without Full Disk Access.
TCC_FOLDERS = ("Desktop", "Documents", "Downloads")
ACTIONS = ("install", "uninstall", "status", "restart", "print")

_PLACEHOLDER = re.compile(r"\{\{[A-Z_]+\}\}")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SYSTEMD_SAFE = re.compile(r"^[A-Za-z0-9_./:@+=,-]+$")
# launchctl's answers for "no such service": bootout says 3 (ESRCH), print says 113.
_NOT_LOADED_CODES = (3, 113)

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """The real runner. No timeout: ``bootout`` waits for a graceful stop (``ExitTimeOut``)."""
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


# --- paths and values -------------------------------------------------------------------------


def stop_timeout(config: Config) -> int:
    """Seconds a service manager waits after SIGTERM: the shutdown grace plus a margin, ≥ 60."""
    grace = float(config.get("queue", "shutdown_grace_seconds"))
    return max(MIN_STOP_SECONDS, math.ceil(grace) + STOP_MARGIN_SECONDS)


def python_path(python: str) -> str:
    """An absolute path to ``python`` that keeps symlinks: a venv's bin/python must stay."""
    if not python:
        raise SharpmldError("cannot tell which python runs sharpmld (sys.executable is empty)")
    if os.sep not in python:
        found = shutil.which(python)
        if found is None:
            raise SharpmldError(f"python {python!r} is not on PATH; give its absolute path")
        python = found
    return os.path.abspath(python)


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


def program_arguments(config: Config, python: str) -> list[str]:
    """``python -m sharpmld run --root ROOT [--config FILE]``, every path absolute."""
    args = [python_path(python), "-m", "sharpmld", "run", "--root", str(config.root.absolute())]
    if config.path is not None:
        args += ["--config", str(config.path.absolute())]
    return args


def _template(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except OSError as exc:
        raise SharpmldError(
            f"the template {path} is missing ({exc.strerror}); "
            "sharpmld must run from a clone of its repository (pip install -e .)"
        ) from None


def _fill(template: str, values: dict[str, str]) -> str:
    """Replace every ``{{NAME}}`` in one pass, so that a value is never searched again."""
    unknown = sorted({m for m in _PLACEHOLDER.findall(template) if m[2:-2] not in values})
    if unknown:
        raise SharpmldError(f"the service template has unknown placeholders: {', '.join(unknown)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(0)[2:-2]], template)


# --- launchd ----------------------------------------------------------------------------------


def render_plist(config: Config, python: str = sys.executable, label: str = DEFAULT_LABEL) -> bytes:
    """The agent's plist: the template filled, parsed back, checked and dumped canonically."""
    args = program_arguments(config, python)
    root = str(config.root.absolute())
    logs = log_dir()
    env_path = f"{os.path.dirname(args[0])}:{SYSTEM_PATH}"
    values = {
        "LABEL": check_label(label),
        "PYTHON": args[0],
        "ROOT": root,
        "EXIT_TIMEOUT": str(stop_timeout(config)),
        "LOG_DIR": str(logs),
        "LOG_NAME": log_name(label),
        "HOME": str(Path.home()),
        "PATH": env_path,
    }
    escaped = {name: escape(value) for name, value in values.items()}
    config_args = args[6:]  # after python -m sharpmld run --root ROOT: the config, if any
    escaped["CONFIG_ARGS"] = "".join(f"\t\t<string>{escape(a)}</string>\n" for a in config_args)
    text = _fill(_template(PLIST_TEMPLATE), escaped)
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


def _domain() -> str:
    return f"gui/{os.getuid()}"


def _launchctl(action: str, err: TextIO, config: Config | None = None) -> str | None:
    """The launchctl binary, or None after telling the person why ``action`` cannot run here."""
    tool = shutil.which("launchctl")
    if tool is None:
        err.write(no_launchd_message(action, config))
    return tool


def _not_loaded(result: subprocess.CompletedProcess[str]) -> bool:
    text = f"{result.stdout}\n{result.stderr}".lower()
    return (
        result.returncode in _NOT_LOADED_CODES
        or "could not find service" in text
        or "no such process" in text
    )


def _failed(err: TextIO, what: str, result: subprocess.CompletedProcess[str], hint: str = "") -> int:
    said = (result.stderr or result.stdout).strip()
    err.write(
        f"sharpmld: `launchctl {what}` failed (exit {result.returncode}){': ' + said if said else ''}\n"
    )
    if hint:
        err.write(hint.rstrip("\n") + "\n")
    return RET_FAILURE


def tcc_note(root: Path, *, macos: bool | None = None) -> str | None:
    """On macOS, a warning when the root sits where TCC blocks daemons without Full Disk Access."""
    if not (sys.platform == "darwin" if macos is None else macos):
        return None
    path = root.absolute()
    home = Path.home()
    protected = [home / name for name in TCC_FOLDERS] + [Path("/Volumes")]
    if not any(path == p or p in path.parents for p in protected):
        return None
    return (
        f"note: {path} is in a folder macOS protects (Desktop, Documents, Downloads or an "
        "external volume). A launchd agent gets silent permission errors there unless its python "
        "has Full Disk Access: System Settings → Privacy & Security → Full Disk Access, add "
        f"{os.path.realpath(sys.executable)} (the real binary behind the venv's python)."
    )


def install(
    config: Config,
    *,
    python: str = sys.executable,
    label: str = DEFAULT_LABEL,
    runner: Runner = run_command,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Write the agent's plist and (re)load it with ``launchctl bootstrap gui/$UID``."""
    out, err = out or sys.stdout, err or sys.stderr
    launchctl = _launchctl("install", err, config)
    if launchctl is None:
        return RET_FAILURE
    if sys.platform == "darwin" and os.geteuid() == 0:
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

    service = f"{_domain()}/{label}"
    if runner([launchctl, "print", service]).returncode == 0:
        result = runner([launchctl, "bootout", service])  # reload so the new plist takes effect
        if result.returncode != 0 and not _not_loaded(result):
            return _failed(err, f"bootout {service}", result)
    result = runner([launchctl, "bootstrap", _domain(), str(target)])
    if result.returncode != 0:
        return _failed(
            err,
            f"bootstrap {_domain()} {target}",
            result,
            f"The gui/{os.getuid()} domain exists only while you are logged in at the Mac's screen "
            f"(not over ssh alone). Check the plist with `plutil -lint {shlex.quote(str(target))}`.",
        )
    out.write(
        f"installed {target}\n"
        f"sharpmld runs now and at every login, on {config.root}.\n"
        f"logs: {log_dir()}/{log_name(label)}.log (errors: {log_name(label)}.err.log)\n"
        "check it with `sharpmld launchd status`; remove it with `sharpmld launchd uninstall`\n"
    )
    note = tcc_note(config.root)
    if note:
        err.write(note + "\n")
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
    launchctl = _launchctl("uninstall", err)
    if launchctl is None:
        return RET_FAILURE
    target = plist_path(label)
    service = f"{_domain()}/{label}"
    result = runner([launchctl, "bootout", service])
    if result.returncode != 0 and not _not_loaded(result):
        return _failed(err, f"bootout {service}", result)
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
    launchctl = _launchctl("status", err)
    if launchctl is None:
        return RET_FAILURE
    target = plist_path(label)
    service = f"{_domain()}/{label}"
    result = runner([launchctl, "print", service])
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
    for key in ("state", "pid", "last exit code"):
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
    launchctl = _launchctl("restart", err)
    if launchctl is None:
        return RET_FAILURE
    service = f"{_domain()}/{label}"
    result = runner([launchctl, "kickstart", "-k", service])
    if result.returncode != 0:
        if _not_loaded(result):
            err.write(f"sharpmld: {label} is not loaded; `sharpmld launchd install` loads it\n")
            return RET_NOT_FOUND
        return _failed(err, f"kickstart -k {service}", result)
    out.write(f"restarted {label}\n")
    return RET_OK


# --- systemd ----------------------------------------------------------------------------------


def _reject_control(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise SharpmldError(f"cannot write a systemd unit: {value!r} holds a control character")
    return value


def systemd_quote(arg: str) -> str:
    """One ExecStart= word: quoted when needed, with systemd's ``%`` and ``$`` doubled."""
    _reject_control(arg)
    doubled = arg.replace("%", "%%").replace("$", "$$")
    if _SYSTEMD_SAFE.match(arg):
        return doubled
    return '"' + doubled.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_systemd(config: Config, python: str = sys.executable) -> str:
    """The systemd user unit: ExecStart runs ``python -m sharpmld run --root ROOT ...``."""
    args = program_arguments(config, python)
    root = _reject_control(str(config.root.absolute()))
    values = {
        "EXEC_START": " ".join(systemd_quote(a) for a in args),
        "WORKING_DIRECTORY": root.replace("%", "%%"),  # a path setting: specifiers, no quotes
        "STOP_TIMEOUT": str(stop_timeout(config)),
    }
    return _fill(_template(SYSTEMD_TEMPLATE), values)


def no_launchd_message(action: str, config: Config | None = None) -> str:
    """What to do instead on a system without launchctl (Linux): the systemd user unit."""
    head = "sharpmld: launchd is macOS-only (there is no `launchctl` on this system).\n"
    if action == "install":
        where = Path(SYSTEMD_DIR) / SYSTEMD_UNIT
        flags = ""
        if config is not None:
            flags = f" --root {shlex.quote(str(config.root.absolute()))}"
            if config.path is not None:
                flags += f" --config {shlex.quote(str(config.path.absolute()))}"
        return head + (
            "On Linux, run sharpmld as a systemd user service instead:\n"
            f"  mkdir -p {SYSTEMD_DIR}\n"
            f"  sharpmld launchd print --systemd{flags} > {where}\n"
            "  systemctl --user daemon-reload && systemctl --user enable --now sharpmld\n"
            '(and `loginctl enable-linger "$USER"` to keep it running while you are logged out)\n'
        )
    instead = {
        "uninstall": "systemctl --user disable --now sharpmld && "
        f"rm {SYSTEMD_DIR}/{SYSTEMD_UNIT} && systemctl --user daemon-reload",
        "status": "systemctl --user status sharpmld  (logs: journalctl --user -u sharpmld)",
        "restart": "systemctl --user restart sharpmld",
    }[action]
    return head + f"With the systemd user service on Linux: {instead}\n"


# --- the CLI's entry ------------------------------------------------------------------------


def command(
    action: str,
    load_config: Callable[[], Config],
    *,
    systemd: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``sharpmld launchd ACTION``; the configuration is loaded only by the actions that use it."""
    out, err = out or sys.stdout, err or sys.stderr
    if systemd and action != "print":
        err.write("sharpmld: --systemd goes with `print`: sharpmld launchd print --systemd\n")
        return RET_USAGE
    if action == "print":
        cfg = load_config()
        out.write(render_systemd(cfg) if systemd else render_plist(cfg).decode("utf-8"))
        return RET_OK
    if action == "install":
        return install(load_config(), out=out, err=err)
    if action == "uninstall":
        return uninstall(out=out, err=err)
    if action == "status":
        return status(out=out, err=err)
    if action == "restart":
        return restart(out=out, err=err)
    raise ValueError(f"unknown action {action!r}")
