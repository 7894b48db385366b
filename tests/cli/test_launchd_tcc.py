"""``sharpmld launchd install`` refuses while anything the agent needs sits where TCC blocks it.

TCC answers a launchd agent's reads in Desktop, Documents, Downloads, iCloud Drive
(``~/Library/Mobile Documents``) and /Volumes with EPERM and no prompt (Apple's "Controlling
app access to files and folders on Mac" support page lists the folders). No Mac here: the
check is forced on with ``macos=True``, and HOME is a temp folder.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from sharpmld.cli.codes import RET_FAILURE
from sharpmld.cli.service import launchd, tcc
from sharpmld.core import config


def never_run(argv: object) -> object:
    raise AssertionError(f"launchctl must not run: {argv}")


def config_with(root: Path, text: str) -> config.Config:
    root.mkdir(parents=True, exist_ok=True)
    (root / config.CONFIG_NAME).write_text(text)
    return config.load(root=root, environ={})


def test_install_refuses_naming_every_protected_path(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    (fakebin / "launchctl").write_text("#!/bin/sh\nexit 99\n")
    (fakebin / "launchctl").chmod(0o755)
    monkeypatch.setenv("PATH", str(fakebin))
    venv = home / "Desktop" / "project" / ".venv" / "bin" / "python"
    venv.parent.mkdir(parents=True)
    venv.symlink_to(sys.executable)
    worker = home / "Library" / "Mobile Documents" / "com~apple~CloudDocs" / "py" / "bin" / "python3"
    checkpoint = Path("/Volumes/Models/sharp.pt")
    root = home / "Documents" / "SharpML"
    cfg = config_with(root, f'[worker]\npython = "{worker}"\n[model]\ncheckpoint = "{checkpoint}"\n')
    out, err = io.StringIO(), io.StringIO()

    code = launchd.install(cfg, python=str(venv), runner=never_run, macos=True, out=out, err=err)  # type: ignore[arg-type]

    assert code == RET_FAILURE
    text = err.getvalue()
    assert f"the root: {root}\n" in text
    assert f"the daemon's python: {venv}\n" in text
    assert f"the worker's python ([worker] python): {worker}\n" in text
    assert f"the configuration file: {root / config.CONFIG_NAME}\n" in text
    assert f"the checkpoint ([model] checkpoint): {checkpoint}\n" in text
    assert "iCloud Drive" in text and text.count("Move each outside them") == 1
    assert "daemon's python, resolved" not in text, "the venv's target is not in a protected place"
    assert not (home / "Library" / "LaunchAgents").exists(), "nothing written"
    assert out.getvalue() == ""


def test_the_resolved_python_and_the_package_are_checked(home: Path, tmp_path: Path) -> None:
    real = home / "Downloads" / "python" / "bin" / "python3.12"
    real.parent.mkdir(parents=True)
    real.write_text("")
    link = tmp_path / "venv" / "bin" / "python"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    package = home / "Documents" / "src" / "sharpmld"
    cfg = config.load(root=tmp_path / "root", environ={})

    found = tcc.protected_paths(cfg, str(link), package=package)

    assert found == [("the daemon's python, resolved", real), ("the sharpmld package", package)]
    assert tcc.protected_paths(cfg, str(link), package=tmp_path / "sharpmld") == found[:1]


def test_nothing_protected_nothing_refused(home: Path, tmp_path: Path) -> None:
    cfg = config.load(root=home / "SharpML", environ={})
    assert tcc.protected_paths(cfg, sys.executable, package=tmp_path / "sharpmld") == []
