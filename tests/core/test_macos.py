"""Where TCC blocks a launchd agent, and which binary Full Disk Access must name.

No Mac runs these tests. The interpreter layouts are rebuilt in temp folders from the
documents that describe them: CPython's ``Mac/Makefile.in`` (a framework build installs
``Versions/X.Y/bin/pythonX.Y`` and ``Versions/X.Y/Resources/Python.app``) and
``Mac/Tools/pythonw.c`` (that bin/ file only execs ``Python.app/Contents/MacOS/Python``), for
python.org's installer, Homebrew's ``python@3.12`` (built ``--enable-framework``, formula
source) and the Command Line Tools' ``Python3.framework``.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from sharpmld.core import macos


def framework(prefix: Path, name: str, version: str) -> tuple[Path, Path]:
    """A framework build under ``prefix``: its bin/pythonX.Y launcher and its Python.app."""
    versions = prefix / f"{name}.framework" / "Versions" / version
    launcher = versions / "bin" / f"python{version}"
    launcher.parent.mkdir(parents=True)
    launcher.write_text("#!launcher\n")
    (versions / "bin" / "python3").symlink_to(f"python{version}")
    app = versions / "Resources" / "Python.app"
    (app / "Contents" / "MacOS").mkdir(parents=True)
    (app / "Contents" / "MacOS" / "Python").write_text("binary\n")
    return launcher, app


def venv_python(folder: Path, target: Path) -> Path:
    """A venv's bin/python: a symlink to the base interpreter, as ``python -m venv`` makes it."""
    link = folder / "bin" / "python"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    return link


def test_icloud_drive_and_the_other_protected_places(home: Path) -> None:
    assert macos.is_protected(home / "Library" / "Mobile Documents" / "com~apple~CloudDocs" / "SharpML")
    assert macos.is_protected(home / "Library" / "Mobile Documents")
    for name in ("Desktop", "Documents", "Downloads"):
        assert macos.is_protected(home / name / "SharpML"), name
    assert macos.is_protected(Path("/Volumes/External/SharpML"))
    assert not macos.is_protected(home / "SharpML")
    assert not macos.is_protected(home / "Library" / "Caches" / "sharpmld")
    assert not macos.is_protected(home / "DocumentsOld")
    assert "iCloud Drive" in macos.full_disk_access_advice(macos.TccBinary("/x/python", None))


@pytest.mark.parametrize(
    ("prefix", "name", "version"),
    [
        ("Library/Frameworks", "Python", "3.12"),  # python.org installer
        ("opt/homebrew/Cellar/python@3.12/3.12.7/Frameworks", "Python", "3.12"),  # Homebrew
        ("Library/Developer/CommandLineTools/Library/Frameworks", "Python3", "3.9"),  # CLT
    ],
)
def test_a_framework_python_is_seen_as_its_python_app(
    tmp_path: Path, prefix: str, name: str, version: str
) -> None:
    launcher, app = framework(tmp_path / prefix, name, version)
    link = venv_python(tmp_path / "project" / ".venv", launcher.parent / "python3")
    assert os.path.realpath(link) == str(launcher), "what today's advice would have named"

    seen = macos.tcc_binary(str(link))
    assert seen == macos.TccBinary(str(app / "Contents" / "MacOS" / "Python"), str(app))
    advice = macos.full_disk_access_advice(seen)
    assert str(app) in advice and seen.binary in advice
    assert str(launcher) not in advice.replace(seen.binary, "")


def test_a_plain_python_is_seen_as_itself(tmp_path: Path) -> None:
    real = tmp_path / "python-build-standalone" / "bin" / "python3.12"
    real.parent.mkdir(parents=True)
    real.write_text("binary\n")
    link = venv_python(tmp_path / ".venv", real)
    seen = macos.tcc_binary(str(link))
    assert seen == macos.TccBinary(str(real), None)
    assert f"add {real}, the real binary" in macos.full_disk_access_advice(seen)


def test_a_binary_inside_an_app_names_the_app(tmp_path: Path) -> None:
    app = tmp_path / "Applications" / "Some Python.app"
    binary = app / "Contents" / "MacOS" / "python"
    binary.parent.mkdir(parents=True)
    binary.write_text("binary\n")
    assert macos.tcc_binary(str(binary)) == macos.TccBinary(str(binary), str(app))


def test_the_running_process_is_named_by_its_real_executable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psutil's ``exe()`` is proc_pidpath on macOS: the Python.app binary, past the launcher."""
    _, app = framework(tmp_path / "Library" / "Frameworks", "Python", "3.12")
    binary = app / "Contents" / "MacOS" / "Python"

    class Process:
        def exe(self) -> str:
            return str(binary)

    monkeypatch.setattr(psutil, "Process", Process)
    assert macos.running_tcc_binary() == macos.TccBinary(str(binary), str(app))
    assert str(app) in macos.full_disk_access_advice()

    class Gone:
        def exe(self) -> str:
            raise psutil.AccessDenied()

    monkeypatch.setattr(psutil, "Process", Gone)
    assert macos.running_tcc_binary().binary == os.path.realpath(macos.sys.executable)
