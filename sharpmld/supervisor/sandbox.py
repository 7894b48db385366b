"""The worker's sandbox: the command that wraps it, the macOS profile, and a probe of the tool.

Linux: a new, empty network namespace (``unshare --net``, with ``--user`` when not root).
macOS: ``sandbox-exec`` with a profile that denies the network and every file write outside
the folders the worker writes in. Not verified on a Mac here: the profile follows the
sandbox-exec(1) man page (``-p`` profile text, ``-D key=value`` parameters), the sandbox
profile language as read from Apple's own profiles in ``/usr/share/sandbox`` and
``/System/Library/Sandbox/Profiles`` (``(param "NAME")``, ``subpath``, ``literal``; the last
matching rule wins, so a later ``allow`` carves an exception out of an earlier ``deny``), and
Bazel's ``DarwinSandboxedSpawnRunner``, which uses the same ``(allow default)``,
``(deny file-write*)``, ``(allow file-write* (subpath ...))`` shape for its build actions.

Paths never enter the profile text: each is a ``-D NAME=path`` argument read back with
``(param "NAME")``, so a folder name holding quotes or parentheses stays a string.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from sharpmld.core.errors import SandboxUnavailable

# The folders the worker may write in, by parameter name. WORK_DIR is the root's whole
# ``working/`` (the worker serves several jobs in a row and writes only into the job's folder
# there); STATE_DIR is ``.sharpmld/`` (its cache of outputs lives in ``.sharpmld/cache``).
WRITABLE_PARAMS = ("WORK_DIR", "STATE_DIR", "TMP_DIR")
# Always writable on macOS: the system temp folders (/tmp and /var are links into /private),
# where the per-user DARWIN_USER_TEMP_DIR and DARWIN_USER_CACHE_DIR (.../T/ and .../C/, the
# Metal shader cache among them) live; and the devices Metal and the C runtime open for writing.
SYSTEM_WRITABLE = ("/private/tmp", "/private/var/folders")
DEVICES_WRITABLE = ("/dev/null", "/dev/zero", "/dev/dtracehelper", "/dev/tty", "/dev/random", "/dev/urandom")

SANDBOX_PROFILE = "\n".join(
    [
        "(version 1)",
        "(allow default)",
        "(deny network*)",
        "(deny file-write*)",
        "(allow file-write*",
        *(f'  (subpath (param "{name}"))' for name in WRITABLE_PARAMS),
        *(f'  (subpath "{path}")' for path in SYSTEM_WRITABLE),
        *(f'  (literal "{path}")' for path in DEVICES_WRITABLE),
        ")",
    ]
)
# What the probe runs under each tool: nothing but the tool itself can fail.
MACOS_PROBE_PROFILE = "(version 1)(allow default)"
PROBE_TIMEOUT = 10.0


def writable_folders(root: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``-D`` parameters for ``root``: real paths, because the sandbox matches resolved ones
    (``/tmp`` is ``/private/tmp`` on macOS)."""
    env = os.environ if env is None else env
    tmp = env.get("TMPDIR") or tempfile.gettempdir()
    folders = {"WORK_DIR": root / "working", "STATE_DIR": root / ".sharpmld", "TMP_DIR": Path(tmp)}
    return {name: os.path.realpath(path) for name, path in folders.items()}


def sandbox_prefix(
    enabled: bool,
    *,
    root: Path | None = None,
    platform: str | None = None,
    which: Callable[[str], str | None] = shutil.which,
    euid: int | None = None,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """The command that runs the worker sandboxed, or [] when not asked for.

    Asked for but impossible is an error, never a silent no-op. ``root`` is the queue root
    whose folders the macOS profile lets the worker write in (the current folder if None).
    """
    if not enabled:
        return []
    platform = sys.platform if platform is None else platform
    if platform == "darwin":
        tool = which("sandbox-exec")
        if tool:
            params = writable_folders(Path.cwd() if root is None else root, env)
            defines = [arg for name, path in params.items() for arg in ("-D", f"{name}={path}")]
            return [tool, *defines, "-p", SANDBOX_PROFILE]
    elif tool := which("unshare"):
        if (os.geteuid() if euid is None else euid) == 0:
            return [tool, "--net"]
        return [tool, "--user", "--map-current-user", "--net"]
    raise ValueError("worker.sandbox is on but no sandbox tool (unshare / sandbox-exec) exists")


def probe_command(prefix: list[str]) -> list[str]:
    """``prefix`` around a command that cannot fail, with the trivial macOS profile."""
    if "-p" in prefix:  # sandbox-exec: keep the tool, drop our profile and its parameters
        return [prefix[0], "-p", MACOS_PROBE_PROFILE, "/usr/bin/true"]
    return [*prefix, "true"]


def probe(prefix: list[str], run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> None:
    """Run the sandbox tool once on a trivial command; raise :class:`SandboxUnavailable` with
    the tool's own words when it refuses (e.g. user namespaces restricted), so the reason says
    why instead of "worker exited with status 1"."""
    if not prefix:
        return
    command = probe_command(prefix)
    try:
        done = run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(f"the worker sandbox {prefix[0]} cannot run: {exc}") from exc
    if done.returncode != 0:
        said = (done.stderr or done.stdout or "").strip()[-300:] or f"exit status {done.returncode}"
        raise SandboxUnavailable(f"the worker sandbox fails ({' '.join(command)}): {said}")
