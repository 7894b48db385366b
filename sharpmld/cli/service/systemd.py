"""Running at login on Linux: the systemd user unit, and the steps that install it.

sharpmld does not drive systemctl itself: ``sharpmld launchd print --systemd`` renders the unit
and the person installs it with the three commands this module spells out (also what the
launchd actions say on a system without launchctl).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from sharpmld.cli.service.roles import DAEMON, Role
from sharpmld.cli.service.templates import (
    SYSTEMD_TEMPLATE,
    fill,
    program_arguments,
    reject_control,
    stop_timeout,
    systemd_quote,
    template,
)
from sharpmld.core.config import Config

SYSTEMD_DIR = "~/.config/systemd/user"


def render_systemd(config: Config, python: str = sys.executable, role: Role = DAEMON) -> str:
    """The systemd user unit: ExecStart runs ``python -m sharpmld COMMAND --root ROOT ...``."""
    args = program_arguments(config, python, role.command)
    root = reject_control(str(config.root.absolute()))
    values = {
        "EXEC_START": " ".join(systemd_quote(a) for a in args),
        "WORKING_DIRECTORY": root.replace("%", "%%"),  # a path setting: specifiers, no quotes
        "STOP_TIMEOUT": str(stop_timeout(config)),
        "UNIT": role.unit,
        "RUNS": role.runs,
        "FLAGS": role_flags(role),
    }
    return fill(template(SYSTEMD_TEMPLATE), values)


def role_flags(role: Role) -> str:
    """The ``sharpmld launchd`` flags that name ``role`` (nothing for the daemon)."""
    if role.name == "web":
        return " --web"
    if role.name == "worker":
        return f" --worker {shlex.quote(role.command[-1])}"
    return ""


def instead_of_launchd(action: str, config: Config | None = None, role: Role = DAEMON) -> str:
    """What to do instead on a system without launchctl (Linux): the systemd user unit."""
    head = "sharpmld: launchd is macOS-only (there is no `launchctl` on this system).\n"
    unit = role.unit
    if action == "install":
        where = Path(SYSTEMD_DIR) / f"{unit}.service"
        flags = role_flags(role)
        if config is not None:
            flags = f" --root {shlex.quote(str(config.root.absolute()))}"
            if config.path is not None:
                flags += f" --config {shlex.quote(str(config.path.absolute()))}"
        return head + (
            "On Linux, run sharpmld as a systemd user service instead:\n"
            f"  mkdir -p {SYSTEMD_DIR}\n"
            f"  sharpmld launchd print --systemd{flags} > {where}\n"
            f"  systemctl --user daemon-reload && systemctl --user enable --now {unit}\n"
            '(and `loginctl enable-linger "$USER"` to keep it running while you are logged out)\n'
        )
    instead = {
        "uninstall": f"systemctl --user disable --now {unit} && "
        f"rm {SYSTEMD_DIR}/{unit}.service && systemctl --user daemon-reload",
        "status": f"systemctl --user status {unit}  (logs: journalctl --user -u {unit})",
        "restart": f"systemctl --user restart {unit}",
    }[action]
    return head + f"With the systemd user service on Linux: {instead}\n"
