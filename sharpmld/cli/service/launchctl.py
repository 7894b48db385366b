"""``launchctl``, run in the logged-in user's ``gui/UID`` domain, with its failures explained.

Every launchd action goes through one ``Launchctl``: it finds the binary (or says what to do
on a system without it), runs each command through an injectable runner (tests put a fake
``launchctl`` first on PATH), tells "no such service" apart from real failures, and turns a
failure into one message naming the command, launchctl's own words and the likely cause.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from sharpmld.cli.codes import RET_FAILURE
from sharpmld.cli.service.roles import DAEMON, Role
from sharpmld.cli.service.systemd import instead_of_launchd
from sharpmld.core.config import Config

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]

# launchctl exits with an errno-style code that `launchctl error CODE` decodes (launchctl(1)):
# 3 ESRCH "No such process", 5 EIO "Input/output error", 36 EINPROGRESS "Operation now in
# progress"; print says 113 for a service launchd does not know.
ESRCH, EIO, EINPROGRESS = 3, 5, 36
_NOT_LOADED_CODES = (ESRCH, 113)
_PRINT_FIELD = re.compile(r"^\s*(state|pid|last exit code) = (.*)$")


@dataclass(frozen=True)
class ServiceState:
    """What ``launchctl print`` says of a loaded service: running or not, pid, last exit code."""

    fields: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        """``state = running``; launchd prints ``not running`` (or ``waiting``) otherwise."""
        return self.fields.get("state") == "running"

    @property
    def pid(self) -> str | None:
        """The running job's pid as printed, or None."""
        return self.fields.get("pid")

    @classmethod
    def parse(cls, text: str) -> ServiceState:
        """The first ``state``, ``pid`` and ``last exit code`` lines: the service's own, not a
        nested endpoint's, which ``print`` lists further down."""
        fields: dict[str, str] = {}
        for line in text.splitlines():
            match = _PRINT_FIELD.match(line)
            if match and match.group(1) not in fields:
                fields[match.group(1)] = match.group(2).strip()
        return cls(fields)


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
        cls,
        action: str,
        err: TextIO,
        runner: Runner = run_command,
        config: Config | None = None,
        role: Role = DAEMON,
    ) -> Launchctl | None:
        """The launchctl on PATH, or None after telling the person why ``action`` cannot run."""
        tool = shutil.which("launchctl")
        if tool is None:
            err.write(instead_of_launchd(action, config, role))
            return None
        return cls(tool, err, runner)

    def service(self, label: str) -> str:
        """The service target of an agent: ``gui/UID/LABEL``."""
        return f"{self.domain}/{label}"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``launchctl ARGS`` and return what it did."""
        return self.runner([self.tool, *args])

    def state(self, service: str) -> ServiceState | None:
        """The service's state from ``launchctl print``, or None when it is not loaded."""
        result = self.run("print", service)
        return ServiceState.parse(result.stdout) if result.returncode == 0 else None

    @staticmethod
    def not_loaded(result: subprocess.CompletedProcess[str]) -> bool:
        """Whether a failed command only said that the service is not loaded."""
        text = f"{result.stdout}\n{result.stderr}".lower()
        return (
            result.returncode in _NOT_LOADED_CODES
            or "could not find service" in text
            or "no such process" in text
        )

    def failed(
        self, args: Sequence[str], result: subprocess.CompletedProcess[str], hint: str | None = None
    ) -> int:
        """Say which command failed, launchctl's words and the likely cause; RET_FAILURE."""
        said = (result.stderr or result.stdout).strip()
        self.err.write(
            f"sharpmld: `launchctl {' '.join(args)}` failed (exit {result.returncode})"
            f"{': ' + said if said else ''}\n"
        )
        hint = self._hint(args) if hint is None else hint
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
