"""Running sharpmld at login: a launchd agent on macOS, a systemd user unit on Linux.

``templates`` fills the shipped templates, ``plist`` renders the agent, ``launchd`` installs
and drives it through ``launchctl.Launchctl`` (``waiting`` bounds launchd's asynchronous
stops, ``tcc`` refuses protected paths, ``logcap`` caps its logs), ``systemd`` renders the
unit and says how to install it. No torch, no numpy: the CLI imports this package for ``sharpmld launchd``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from sharpmld.cli.codes import RET_OK, RET_USAGE
from sharpmld.cli.service import launchd
from sharpmld.cli.service.systemd import render_systemd
from sharpmld.core.config import Config
from sharpmld.core.errors import SharpmldError


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
        out.write(render_systemd(cfg) if systemd else launchd.render_plist(cfg).decode("utf-8"))
        return RET_OK
    if action == "install":
        return launchd.install(load_config(), out=out, err=err)
    if action == "uninstall":
        return launchd.uninstall(_loaded_or_none(load_config), out=out, err=err)
    if action == "status":
        return launchd.status(out=out, err=err)
    if action == "restart":
        return launchd.restart(load_config(), out=out, err=err)
    raise ValueError(f"unknown action {action!r}")


def _loaded_or_none(load_config: Callable[[], Config]) -> Config | None:
    """The configuration, or None when it does not load: uninstalling must still work then."""
    try:
        return load_config()
    except SharpmldError:
        return None
