"""The service templates: where they ship, what fills them, and how each value is escaped.

The templates are package data in ``sharpmld/cli/templates/``, read through
``importlib.resources`` so that an installed wheel renders them as well as a checkout does.
Filling replaces every ``{{NAME}}`` placeholder in one pass, so a value that itself contains
``{{...}}`` is never searched again. The values are escaped by the caller for the format at
hand: XML for a plist, systemd's quoting for a unit.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from importlib import resources

from sharpmld.core.config import Config
from sharpmld.core.errors import SharpmldError

PLIST_TEMPLATE = "com.sharpml.sharpmld.plist"
SYSTEMD_TEMPLATE = "sharpmld.service"
MIN_STOP_SECONDS = 60
STOP_MARGIN_SECONDS = 30

_PLACEHOLDER = re.compile(r"\{\{[A-Z_]+\}\}")
_SYSTEMD_SAFE = re.compile(r"^[A-Za-z0-9_./:@+=,-]+$")


def template(name: str) -> str:
    """The text of one template shipped with the package."""
    try:
        return (resources.files("sharpmld.cli") / "templates" / name).read_text("utf-8")
    except OSError as exc:
        raise SharpmldError(
            f"the service template {name} is missing from the installed package "
            f"({exc.strerror or exc}); reinstall sharpmld"
        ) from None


def fill(text: str, values: dict[str, str]) -> str:
    """Replace every ``{{NAME}}`` in one pass; a placeholder without a value is an error."""
    unknown = sorted({m for m in _PLACEHOLDER.findall(text) if m[2:-2] not in values})
    if unknown:
        raise SharpmldError(f"the service template has unknown placeholders: {', '.join(unknown)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(0)[2:-2]], text)


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


def program_arguments(config: Config, python: str, command: tuple[str, ...] = ("run",)) -> list[str]:
    """``python -m sharpmld COMMAND --root ROOT [--config FILE]``, every path absolute."""
    args = [python_path(python), "-m", "sharpmld", *command, "--root", str(config.root.absolute())]
    if config.path is not None:
        args += ["--config", str(config.path.absolute())]
    return args


def reject_control(value: str) -> str:
    """``value`` unchanged, or an error when it holds a control character a unit cannot hold."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise SharpmldError(f"cannot write a systemd unit: {value!r} holds a control character")
    return value


def systemd_quote(arg: str) -> str:
    """One ExecStart= word: quoted when needed, with systemd's ``%`` and ``$`` doubled."""
    reject_control(arg)
    doubled = arg.replace("%", "%%").replace("$", "$$")
    if _SYSTEMD_SAFE.match(arg):
        return doubled
    return '"' + doubled.replace("\\", "\\\\").replace('"', '\\"') + '"'
