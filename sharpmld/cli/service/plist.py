"""The launchd agent's plist: where it lives, where its logs go, and what it says.

The plist template is filled with XML-escaped values, parsed back with ``plistlib`` and
compared with what was meant, so a path that a plist cannot hold is an error here and never a
broken agent.
"""

from __future__ import annotations

import os
import plistlib
import re
import sys
from pathlib import Path
from typing import Any
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape

from sharpmld.cli.service.logcap import LOG_BASE_ENV
from sharpmld.cli.service.roles import DAEMON, DEFAULT_LABEL, Role
from sharpmld.cli.service.templates import PLIST_TEMPLATE, fill, program_arguments, stop_timeout, template
from sharpmld.core.config import Config
from sharpmld.core.errors import SharpmldError

HOMEBREW_PATH = "/opt/homebrew/bin:/usr/local/bin"
"""Homebrew's bin on Apple Silicon, then on Intel (and other /usr/local installs): launchd's
default PATH has neither, and tools the model code shells out to are installed there."""
SYSTEM_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


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


def render_plist(
    config: Config, python: str = sys.executable, label: str | None = None, role: Role = DAEMON
) -> bytes:
    """The agent's plist: the template filled, parsed back, checked and dumped canonically."""
    label = role.label if label is None else label
    args = program_arguments(config, python, role.command)
    home = str(Path.home())
    logs = log_dir()
    values = {
        "LABEL": check_label(label),
        "PYTHON": args[0],
        "EXIT_TIMEOUT": str(stop_timeout(config)),
        "LOG_DIR": str(logs),
        "LOG_NAME": log_name(label),
        "HOME": home,
        "PATH": f"{os.path.dirname(args[0])}:{HOMEBREW_PATH}:{SYSTEM_PATH}",
        "LOG_BASE_ENV": LOG_BASE_ENV,
    }
    escaped = {name: escape(value) for name, value in values.items()}
    # After ``python -m sharpmld``: the role's command, --root ROOT and the config, if any.
    escaped["COMMAND_ARGS"] = "".join(f"\t\t<string>{escape(a)}</string>\n" for a in args[3:])
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
        "WorkingDirectory": home,
        "StandardOutPath": f"{logs}/{values['LOG_NAME']}.log",
        "StandardErrorPath": f"{logs}/{values['LOG_NAME']}.err.log",
        "EnvironmentVariables": {
            "PYTHONUNBUFFERED": "1",
            "PYTORCH_ENABLE_MPS_FALLBACK": "1",
            "HOME": home,
            "PATH": values["PATH"],
            LOG_BASE_ENV: f"{logs}/{values['LOG_NAME']}",
        },
    }
    for key, value in expected.items():
        if data.get(key) != value:
            raise SharpmldError(
                f"cannot write a launchd plist: {key} would read {data.get(key)!r} instead of "
                f"{value!r} (a path holds characters a plist cannot hold, e.g. a carriage return)"
            )
    return plistlib.dumps(data, fmt=plistlib.FMT_XML, sort_keys=True)
