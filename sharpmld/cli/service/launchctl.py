"""``launchctl``, run in the logged-in user's ``gui/UID`` domain, with its failures explained.

Every launchd action goes through one ``Launchctl``: it finds the binary (or says what to do
on a system without it), runs each command through an injectable runner (tests put a fake
``launchctl`` first on PATH), tells "no such service" apart from real failures, and turns a
failure into one message naming the command, launchctl's own words and the likely cause.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from typing import TextIO

from sharpmld.cli.codes import RET_FAILURE
from sharpmld.cli.service.systemd import instead_of_launchd
from sharpmld.core.config import Config

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]

# launchctl's answers for "no such service": bootout says 3 (ESRCH), print says 113.
_NOT_LOADED_CODES = (3, 113)


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """The real runner. No timeout: ``bootout`` waits for a graceful stop (``ExitTimeOut``)."""
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


class Launchctl:
    """One launchctl binary and the user's GUI domain, with the explanations of its failures."""

    def __init__(self, tool: str, err: TextIO, runner: Runner = run_command) -> None:
        self.tool = tool
        self.err = err
        self.runner = runner
        self.domain = f"gui/{os.getuid()}"

    @classmethod
    def find(
        cls, action: str, err: TextIO, runner: Runner = run_command, config: Config | None = None
    ) -> Launchctl | None:
        """The launchctl on PATH, or None after telling the person why ``action`` cannot run."""
        tool = shutil.which("launchctl")
        if tool is None:
            err.write(instead_of_launchd(action, config))
            return None
        return cls(tool, err, runner)

    def service(self, label: str) -> str:
        """The service target of an agent: ``gui/UID/LABEL``."""
        return f"{self.domain}/{label}"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``launchctl ARGS`` and return what it did."""
        return self.runner([self.tool, *args])

    @staticmethod
    def not_loaded(result: subprocess.CompletedProcess[str]) -> bool:
        """Whether a failed command only said that the service is not loaded."""
        text = f"{result.stdout}\n{result.stderr}".lower()
        return (
            result.returncode in _NOT_LOADED_CODES
            or "could not find service" in text
            or "no such process" in text
        )

    def failed(self, args: Sequence[str], result: subprocess.CompletedProcess[str]) -> int:
        """Say which command failed, launchctl's words and the likely cause; RET_FAILURE."""
        said = (result.stderr or result.stdout).strip()
        self.err.write(
            f"sharpmld: `launchctl {' '.join(args)}` failed (exit {result.returncode})"
            f"{': ' + said if said else ''}\n"
        )
        hint = self._hint(args)
        if hint:
            self.err.write(hint + "\n")
        return RET_FAILURE

    def _hint(self, args: Sequence[str]) -> str:
        if args and args[0] == "bootstrap":
            plist = shlex.quote(args[-1]) if len(args) > 2 else "the plist"
            return (
                f"The {self.domain} domain exists only while you are logged in at the Mac's screen "
                f"(not over ssh alone). Check the plist with `plutil -lint {plist}`."
            )
        return ""
