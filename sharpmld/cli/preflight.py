"""Before `make` builds the venv: is this Python one that PyTorch and sharpmld can run on?

Run as a file by the Makefile (``$(PYTHON) sharpmld/cli/preflight.py``) with whatever Python
the person has, possibly an old or an Intel one, so it uses only the standard library and
syntax Python 3.7 parses (macOS's Command Line Tools ship 3.9). Without it, an x86_64
Python under Rosetta on an Apple Silicon Mac gets as far as ``pip install torch`` and fails
there with "no matching distribution", which says nothing about the cause. PyTorch publishes
macOS wheels for arm64 only (none for x86_64 since 2.2).
"""

from __future__ import annotations

import platform
import subprocess
import sys

MINIMUM = (3, 11)
MAC_FIX = (
    "Install an Apple Silicon (arm64) Python 3.11 or newer, e.g. `brew install python@3.12` "
    "with Homebrew in /opt/homebrew, or the universal installer from python.org, then run "
    "make with it: `make PYTHON=/opt/homebrew/bin/python3.12 run`."
)


def problems(version: tuple[int, ...], system: str, machine: str, arm64_hardware: bool) -> list[str]:
    """What is wrong with a Python of ``version`` built for ``machine`` on ``system``."""
    found = []
    if tuple(version[:2]) < MINIMUM:
        found.append(
            f"sharpmld needs Python {MINIMUM[0]}.{MINIMUM[1]} or newer; "
            f"this one is {version[0]}.{version[1]}."
        )
    if system == "Darwin" and machine != "arm64":
        if arm64_hardware:
            found.append(
                f"This Python is an Intel ({machine}) build running under Rosetta on an Apple Silicon "
                "Mac: PyTorch has no wheels for it, and it could not use the GPU (MPS)."
            )
        else:
            found.append("PyTorch has no wheels for Intel Macs since 2.2: sharpmld needs Apple Silicon.")
    return found


def _arm64_hardware() -> bool:
    """Whether the Mac itself is Apple Silicon, asked in a way Rosetta does not hide."""
    try:
        out = subprocess.check_output(["/usr/sbin/sysctl", "-n", "hw.optional.arm64"])
    except (OSError, subprocess.CalledProcessError):
        return False
    return out.strip() == b"1"


def main() -> int:
    system = platform.system()
    found = problems(
        tuple(sys.version_info[:3]), system, platform.machine(), system == "Darwin" and _arm64_hardware()
    )
    if not found:
        return 0
    sys.stderr.write(f"sharpmld: {sys.executable} cannot be used:\n")
    for line in found:
        sys.stderr.write(f"  - {line}\n")
    if system == "Darwin":
        sys.stderr.write(MAC_FIX + "\n")
    else:
        sys.stderr.write("Install Python 3.11 or newer and run make with it: `make PYTHON=python3.11 run`.\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
