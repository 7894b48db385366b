"""The worker sandbox on both platforms, checked on Linux.

The macOS profile cannot run here: its text and argv are checked against the sandbox-exec(1)
man page's ``-D key=value`` / ``-p profile`` form and the profile language's ``(param ...)``
strings; the probe is run for real against fake ``unshare`` tools on PATH that fail the way
the real one does where user namespaces are restricted.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sharpmld.core.config import Config
from sharpmld.core.errors import SandboxUnavailable
from sharpmld.protocol import WorkerUnavailable
from sharpmld.supervisor import sandbox, spawn
from sharpmld.supervisor import supervisor as sv
from tests.support import harness

REFUSED = "unshare: unshare failed: Operation not permitted"
HOSTILE = 'evil") (allow file-write* (subpath "/'


def darwin_argv(root: Path, tmpdir: Path) -> list[str]:
    return sandbox.sandbox_prefix(
        True, root=root, platform="darwin", which=lambda t: f"/usr/bin/{t}", env={"TMPDIR": str(tmpdir)}
    )


def defines(argv: list[str]) -> dict[str, str]:
    """The ``-D NAME=value`` pairs of a sandbox-exec argv, split at the first ``=`` as it does."""
    pairs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-D"]
    return dict(p.split("=", 1) for p in pairs)


def test_the_macos_profile_denies_writes_except_under_its_parameters_and_temp_folders() -> None:
    forms = [line.strip() for line in sandbox.SANDBOX_PROFILE.splitlines()]
    assert forms[:4] == ["(version 1)", "(allow default)", "(deny network*)", "(deny file-write*)"]
    allowed = sandbox.SANDBOX_PROFILE.split("(deny file-write*)", 1)[1]
    assert allowed.lstrip().startswith("(allow file-write*")  # last match wins: the exception
    params = re.findall(r'\(subpath \(param "([A-Z_]+)"\)\)', allowed)
    assert params == ["WORK_DIR", "STATE_DIR", "TMP_DIR"]
    assert '(subpath "/private/tmp")' in allowed and '(subpath "/private/var/folders")' in allowed
    assert '(literal "/dev/null")' in allowed and '(literal "/dev/dtracehelper")' in allowed
    depth = 0
    for ch in sandbox.SANDBOX_PROFILE:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0


def test_macos_argv_passes_the_folders_as_parameters(tmp_path: Path) -> None:
    root, tmpdir = tmp_path / "root", tmp_path / "T"
    argv = darwin_argv(root, tmpdir)
    assert argv[0] == "/usr/bin/sandbox-exec" and argv[-2:] == ["-p", sandbox.SANDBOX_PROFILE]
    assert defines(argv) == {
        "WORK_DIR": os.path.realpath(root / "working"),
        "STATE_DIR": os.path.realpath(root / ".sharpmld"),
        "TMP_DIR": os.path.realpath(tmpdir),
    }
    assert str(tmp_path) not in sandbox.SANDBOX_PROFILE


def test_macos_parameters_are_real_paths_because_the_sandbox_matches_resolved_ones(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert defines(darwin_argv(tmp_path / "link", tmp_path))["WORK_DIR"] == str(tmp_path / "real" / "working")


def test_a_hostile_root_name_stays_one_argument_and_never_reaches_the_profile(tmp_path: Path) -> None:
    root = tmp_path / HOSTILE / "root"
    argv = darwin_argv(root, tmp_path)
    assert argv[-1] == sandbox.SANDBOX_PROFILE  # the same text for every root
    assert HOSTILE not in " ".join(a for a in argv if not a.startswith(("WORK_DIR=", "STATE_DIR=")))
    assert defines(argv)["WORK_DIR"] == os.path.realpath(root / "working")


def test_the_worker_command_carries_the_roots_folders(tmp_path: Path) -> None:
    config = Config(tmp_path, None, {"worker": {"sandbox": True}})
    command = spawn.worker_command(
        config, events_fd=7, platform="darwin", which=lambda t: f"/usr/bin/{t}", base_env={"TMPDIR": "/x"}
    )
    assert defines(command.argv)["WORK_DIR"] == os.path.realpath(tmp_path / "working")
    assert command.sandbox == tuple(command.argv[: command.argv.index(sys.executable)])


# -- the probe -----------------------------------------------------------------------------


def fake_tool(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def refusing_unshare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``unshare`` that fails as the real one does when user namespaces are restricted."""
    bin_dir = tmp_path / "bin"
    tool = fake_tool(bin_dir, "unshare", f'echo "{REFUSED}" >&2\nexit 1')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tool


def test_the_probe_raises_with_the_tools_own_words(refusing_unshare: Path) -> None:
    with pytest.raises(SandboxUnavailable, match=REFUSED) as caught:
        sandbox.probe([str(refusing_unshare), "--net"])
    assert caught.value.code == "sandbox_unavailable"


def test_the_probe_accepts_a_tool_that_runs_the_command(tmp_path: Path) -> None:
    tool = fake_tool(tmp_path / "bin", "unshare", 'shift; exec "$@"')
    sandbox.probe([str(tool), "--net"])


def test_the_macos_probe_uses_a_trivial_profile(tmp_path: Path) -> None:
    argv = darwin_argv(tmp_path, tmp_path)
    trivial = ["/usr/bin/sandbox-exec", "-p", "(version 1)(allow default)", "/usr/bin/true"]
    assert sandbox.probe_command(argv) == trivial


def test_the_supervisor_reports_the_refusal_instead_of_starting_a_worker(
    tmp_path: Path, refusing_unshare: Path
) -> None:
    spawned: list[Any] = []
    config = Config(tmp_path, None, {"worker": {"sandbox": True}})
    supervisor = sv.Supervisor(config, spawn_worker=lambda c: spawned.append(c))  # type: ignore[arg-type,func-returns-value]
    supervisor.start(now=0.0)
    assert spawned == []
    assert supervisor.state == sv.UNAVAILABLE
    assert REFUSED in supervisor.unavailable_reason
    assert "[worker] sandbox = false" in supervisor.unavailable_reason
    assert supervisor.fileno() is None
    [event] = supervisor.step(now=0.1)  # the daemon logs why from this event
    assert isinstance(event, WorkerUnavailable) and event.message == supervisor.unavailable_reason


def test_doctor_fails_the_sandbox_check_with_the_tools_words(
    tmp_path: Path, checkpoint: Path, refusing_unshare: Path
) -> None:
    root = tmp_path / "root"
    harness.write_config(root, checkpoint, worker={"sandbox": True})
    done = subprocess.run(
        [sys.executable, "-m", "sharpmld", "doctor", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        env=harness.env({"PATH": os.environ["PATH"]}),
    )
    lines = done.stdout.splitlines()
    failed = [line for line in lines if line.startswith("[FAIL] sandbox:")]
    assert failed and REFUSED in failed[0], done.stdout + done.stderr
    assert "everything needed is in place" not in done.stdout
    assert done.returncode != 0
