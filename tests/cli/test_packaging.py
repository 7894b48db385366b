"""The service templates ship in the wheel: an installed sharpmld renders them, not only a clone.

The wheel is built offline from a copy of the source (so the worktree gets no build/ or
egg-info), installed without dependencies into a fresh venv, and its own ``sharpmld`` script
is run with no PYTHONPATH, from a folder outside the source, so that nothing but the installed
package can answer.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sharpmld.cli.service.launchd import DEFAULT_LABEL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SOURCE = Path(__file__).resolve().parents[2]
TEMPLATES = ("sharpmld/cli/templates/com.sharpml.sharpmld.plist", "sharpmld/cli/templates/sharpmld.service")


def run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{argv[:3]} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_an_installed_wheel_prints_a_valid_plist(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(SOURCE / name, src / name)
    shutil.copytree(SOURCE / "sharpmld", src / "sharpmld", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HOME=str(tmp_path / "home"), PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    wheels = tmp_path / "wheels"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    run([*pip_wheel, "-w", str(wheels), str(src)], env, tmp_path)
    (wheel,) = wheels.glob("sharpmld-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        missing = [t for t in TEMPLATES if t not in archive.namelist()]
    assert not missing, f"the wheel lacks {missing}"

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], env, tmp_path)
    run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index", str(wheel)], env, tmp_path)
    root = tmp_path / "root"
    proc = run([str(venv / "bin" / "sharpmld"), "launchd", "print", "--root", str(root)], env, tmp_path)

    data = plistlib.loads(proc.stdout.encode("utf-8"))
    assert data["Label"] == DEFAULT_LABEL
    python, *args = data["ProgramArguments"]
    assert Path(python).parent == venv / "bin", "the agent runs the venv's own python"
    assert args == ["-m", "sharpmld", "run", "--root", str(root)]
    assert data["WorkingDirectory"] == str(tmp_path / "home")  # HOME: the root may be unmounted
