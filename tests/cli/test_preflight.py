"""The Makefile's first step: a Python PyTorch and sharpmld cannot run on is named at once."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "sharpmld" / "cli" / "preflight.py"
preflight: dict[str, Any] = runpy.run_path(str(SCRIPT))
problems = preflight["problems"]


def test_an_arm64_python_of_3_11_on_a_mac_passes() -> None:
    assert problems((3, 11, 4), "Darwin", "arm64", True) == []
    assert problems((3, 13, 0), "Linux", "x86_64", False) == []


def test_a_rosetta_python_is_named_as_such() -> None:
    (said,) = problems((3, 12, 1), "Darwin", "x86_64", True)
    assert "Rosetta" in said and "x86_64" in said


def test_an_old_python_is_named_with_its_version() -> None:
    (said,) = problems((3, 9, 6), "Darwin", "arm64", True)  # the Command Line Tools' python3
    assert "3.11" in said and "3.9" in said


def test_an_intel_mac_is_told_plainly() -> None:
    (said,) = problems((3, 12, 0), "Darwin", "x86_64", False)
    assert "Intel" in said


def test_this_machines_python_passes_and_the_makefile_asks_first() -> None:
    assert subprocess.run([sys.executable, str(SCRIPT)], capture_output=True).returncode == 0
    makefile = (SCRIPT.parents[2] / "Makefile").read_text()
    recipe = makefile.split("$(STAMP): pyproject.toml\n", 1)[1].splitlines()
    assert recipe[0].strip() == "$(PYTHON) sharpmld/cli/preflight.py", "it must run before the venv"
