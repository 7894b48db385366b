"""Before installing the agent: every path it will need that sits where TCC blocks it.

A launchd agent has no Terminal to borrow permission from: in Desktop, Documents, Downloads,
iCloud Drive and on external volumes its reads fail with EPERM and no prompt. That hits not
only the root but the interpreters it runs (their standard library and site-packages), the
sharpmld package, the configuration file and the checkpoint. ``install`` refuses while any of
them is there, naming each one, instead of installing an agent that fails in the dark.
"""

from __future__ import annotations

import os
from pathlib import Path

import sharpmld
from sharpmld.core.config import Config
from sharpmld.core.macos import PROTECTED_NAMES, is_protected


def needed_paths(config: Config, python: str, package: Path | None = None) -> list[tuple[str, Path]]:
    """What the agent reads or runs, each with what it is; a venv link and its target both."""
    found: list[tuple[str, Path]] = [("the root", config.root)]
    pythons = [("the daemon's python", python)]
    if config.worker_python:
        pythons.append(("the worker's python ([worker] python)", config.worker_python))
    for what, path in pythons:
        found.append((what, Path(os.path.abspath(path))))
        found.append((f"{what}, resolved", Path(os.path.realpath(path))))
    found.append(("the sharpmld package", package or Path(sharpmld.__file__).parent))
    if config.path is not None:
        found.append(("the configuration file", config.path))
    found.append(("the checkpoint ([model] checkpoint)", config.checkpoint))
    return found


def protected_paths(config: Config, python: str, package: Path | None = None) -> list[tuple[str, Path]]:
    """The needed paths in a TCC-protected place, each path once."""
    seen: set[Path] = set()
    out: list[tuple[str, Path]] = []
    for what, path in needed_paths(config, python, package):
        path = path.absolute()
        if path not in seen and is_protected(path):
            seen.add(path)
            out.append((what, path))
    return out


def refusal(found: list[tuple[str, Path]]) -> str:
    """Why install stops, each offending path on its own line, and the fix once."""
    lines = "".join(f"  {what}: {path}\n" for what, path in found)
    return (
        "sharpmld: not installing the agent: a launchd agent gets silent permission errors "
        f"(EPERM, no prompt) in {PROTECTED_NAMES}, and it needs these there:\n{lines}"
        "Move each outside them (a venv cannot be moved: create a new one elsewhere; the default "
        "root ~/SharpML is outside them) and run `sharpmld launchd install` again.\n"
    )
