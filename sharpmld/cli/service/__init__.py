"""Running sharpmld at login: a launchd agent on macOS, a systemd user unit on Linux.

``templates`` fills the shipped templates, ``plist`` renders the agent, ``launchd`` installs
and drives it through ``launchctl.Launchctl`` (``waiting`` bounds launchd's asynchronous
stops, ``tcc`` refuses protected paths, ``logcap`` caps its logs), ``systemd`` renders the
unit and says how to install it; ``roles`` names the three processes that may each have an
agent (the daemon, the web app, a cluster worker). No torch, no numpy: the CLI imports this
package for ``sharpmld launchd``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from sharpmld.cli.codes import RET_OK, RET_USAGE
from sharpmld.cli.service import launchd, roles
from sharpmld.cli.service.systemd import render_systemd
from sharpmld.core.config import Config
from sharpmld.core.errors import SharpmldError


def command(
    action: str,
    load_config: Callable[[], Config],
    *,
    systemd: bool = False,
    web: bool = False,
    worker: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``sharpmld launchd ACTION [--web | --worker URL]``; the configuration is loaded only by
    the actions that use it."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        role = roles.choose(web, worker)
    except SharpmldError as exc:
        err.write(f"sharpmld: {exc.message}\n")
        return RET_USAGE
    if systemd and action != "print":
        err.write("sharpmld: --systemd goes with `print`: sharpmld launchd print --systemd\n")
        return RET_USAGE
    if action == "print":
        cfg = load_config()
        text = render_systemd(cfg, role=role) if systemd else launchd.render_plist(cfg, role=role).decode()
        out.write(text)
        return RET_OK
    if action == "install":
        return launchd.install(load_config(), role=role, out=out, err=err)
    if action == "uninstall":
        return launchd.uninstall(_loaded_or_none(load_config), label=role.label, out=out, err=err)
    if action == "status":
        return launchd.status(label=role.label, out=out, err=err)
    if action == "restart":
        return launchd.restart(load_config(), label=role.label, out=out, err=err)
    raise ValueError(f"unknown action {action!r}")


def _loaded_or_none(load_config: Callable[[], Config]) -> Config | None:
    """The configuration, or None when it does not load: uninstalling must still work then."""
    try:
        return load_config()
    except SharpmldError:
        return None
