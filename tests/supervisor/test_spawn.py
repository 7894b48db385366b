"""How the worker is started: sandbox, ``[worker] user``, ``[worker] python``, environment.

The command is computed by plain functions, so the macOS sandbox can be checked on Linux by
asking for that platform; where this machine can, the command is also run for real.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sharpmld.core.config import Config
from sharpmld.protocol import EVENT_FD_ENV
from sharpmld.supervisor import spawn
from tests.support import harness

PY = sys.executable


def cfg(tmp_path: Path, **worker: Any) -> Config:
    return Config(tmp_path, None, {"worker": worker})


def only(name: str, path: str) -> Any:
    return lambda tool: path if tool == name else None


def settings_of(command: spawn.WorkerCommand) -> dict[str, Any]:
    assert command.argv[-3:-1] == ["-m", "sharpmld.worker.main"]
    parsed: dict[str, Any] = json.loads(command.argv[-1])
    return parsed


# -- sandbox -------------------------------------------------------------------------------


def test_macos_sandbox_runs_the_worker_under_a_profile_that_denies_the_network(tmp_path: Path) -> None:
    command = spawn.worker_command(
        cfg(tmp_path, sandbox=True),
        events_fd=7,
        platform="darwin",
        which=only("sandbox-exec", "/usr/bin/sandbox-exec"),
    )
    assert command.argv[0] == "/usr/bin/sandbox-exec"
    assert command.argv[command.argv.index(PY) - 2 :][:3] == ["-p", spawn.SANDBOX_PROFILE, PY]
    assert command.python == PY


def test_macos_without_sandbox_exec_refuses_rather_than_running_unsandboxed() -> None:
    with pytest.raises(ValueError, match="sandbox-exec"):
        spawn.sandbox_prefix(True, platform="darwin", which=lambda _tool: None)


@pytest.mark.parametrize(
    ("euid", "expected"),
    [
        (0, ["/usr/bin/unshare", "--net"]),
        (1000, ["/usr/bin/unshare", "--user", "--map-current-user", "--net"]),
    ],
)
def test_linux_sandbox_is_a_new_network_namespace(euid: int, expected: list[str]) -> None:
    prefix = spawn.sandbox_prefix(
        True, platform="linux", which=only("unshare", "/usr/bin/unshare"), euid=euid
    )
    assert prefix == expected


def test_sandbox_off_adds_nothing() -> None:
    assert spawn.sandbox_prefix(False, platform="darwin", which=lambda _tool: None) == []


@pytest.mark.skipif(not sys.platform.startswith("linux") or not shutil.which("unshare"), reason="Linux")
def test_the_linux_sandbox_really_leaves_only_loopback() -> None:
    prefix = spawn.sandbox_prefix(True)
    probe = "import socket; print(sorted(n for _, n in socket.if_nameindex()))"
    done = subprocess.run([*prefix, PY, "-c", probe], capture_output=True, text=True, timeout=60)
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"namespaces not permitted here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['lo']"


# -- [worker] user -------------------------------------------------------------------------


def test_worker_user_becomes_popen_identity_arguments(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    command = spawn.worker_command(cfg(tmp_path, user="nobody"), events_fd=7, euid=0)
    assert command.identity == {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


def test_worker_user_needs_a_root_daemon(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs the daemon to run as root"):
        spawn.worker_command(cfg(tmp_path, user="nobody"), events_fd=7, euid=1000)


def test_no_worker_user_keeps_the_daemons_identity(tmp_path: Path) -> None:
    assert spawn.worker_command(cfg(tmp_path), events_fd=7, euid=1000).identity == {}


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("sh"), reason="switching users needs root")
def test_the_identity_really_switches_user_and_drops_groups() -> None:
    nobody = pwd.getpwnam("nobody")
    identity = spawn.worker_identity("nobody")
    # A system tool, not our interpreter: "nobody" may not be allowed to run a private venv.
    done = subprocess.run(
        ["sh", "-c", "id -u; id -g; id -G"], capture_output=True, text=True, timeout=60, cwd="/", **identity
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(nobody.pw_uid), str(nobody.pw_gid), str(nobody.pw_gid)]


# -- [worker] python and the package folder --------------------------------------------------


def test_worker_python_is_the_interpreter_used(tmp_path: Path) -> None:
    other = tmp_path / "venv" / "bin" / "python3"
    command = spawn.worker_command(cfg(tmp_path, python=str(other)), events_fd=7)
    assert command.python == str(other)
    assert command.argv[0] == str(other)  # no sandbox: the interpreter comes first


def test_a_relative_worker_python_is_relative_to_the_root(tmp_path: Path) -> None:
    command = spawn.worker_command(cfg(tmp_path, python="venv/bin/python"), events_fd=7)
    assert command.python == str(tmp_path / "venv" / "bin" / "python")


def test_the_package_folder_goes_first_on_the_path(tmp_path: Path) -> None:
    pylib = tmp_path / "pylib"
    env = spawn.worker_env(
        cfg(tmp_path), events_fd=9, package_dir=pylib, base_env={"PYTHONPATH": "/site/x", "HOME": "/h"}
    )
    assert env["PYTHONPATH"] == os.pathsep.join([str(pylib), "/site/x"])
    assert env[EVENT_FD_ENV] == "9" and env["PYTHONUNBUFFERED"] == "1" and env["HOME"] == "/h"


def test_the_package_folder_holds_only_this_package_and_a_bare_python_imports_it(tmp_path: Path) -> None:
    import sharpmld

    pylib = spawn.package_path_for(PY, tmp_path / "state")
    assert [p.name for p in pylib.iterdir()] == ["sharpmld"]
    assert spawn.package_path_for(PY, tmp_path / "state") == pylib  # idempotent
    env = spawn.worker_env(cfg(tmp_path), events_fd=9, package_dir=pylib, base_env={})
    # -S: no site-packages, so the package can only come from the folder.
    probe = "import os, sharpmld; print(os.path.realpath(os.path.dirname(sharpmld.__file__)))"
    done = subprocess.run([PY, "-S", "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(Path(sharpmld.__file__).resolve().parent)


# glibc's mallinfo2(3): hblks counts the blocks that have a mapping of their own.
MALLOC_PROBE = """
import ctypes
fields = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
          "fordblks", "keepcost")
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in fields]
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
libc.mallinfo2.restype = Info
libc.free(libc.malloc(4 << 20))
before = libc.mallinfo2().hblks
block = libc.malloc(4 << 20)
print(libc.mallinfo2().hblks - before)
"""


def _second_block_is_mapped(env: dict[str, str]) -> str:
    done = subprocess.run([PY, "-c", MALLOC_PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc")
def test_on_linux_the_worker_gives_each_freed_large_block_back(tmp_path: Path) -> None:
    env = spawn.worker_env(cfg(tmp_path), events_fd=9, package_dir=None, base_env={}, platform="linux")
    assert env["MALLOC_MMAP_THRESHOLD_"] == "131072"
    # By default glibc raises its threshold past a freed 4 MiB block and serves the next one
    # from the heap; the worker's setting keeps giving such blocks a mapping of their own.
    assert _second_block_is_mapped({}) == "0"
    assert _second_block_is_mapped(env) == "1"


def test_a_users_malloc_setting_is_kept_and_other_systems_get_none(tmp_path: Path) -> None:
    mine = {"MALLOC_MMAP_THRESHOLD_": "65536"}
    linux = spawn.worker_env(cfg(tmp_path), events_fd=9, package_dir=None, base_env=mine, platform="linux")
    assert linux["MALLOC_MMAP_THRESHOLD_"] == "65536"
    mac = spawn.worker_env(cfg(tmp_path), events_fd=9, package_dir=None, base_env={}, platform="darwin")
    assert "MALLOC_MMAP_THRESHOLD_" not in mac
    command = spawn.worker_command(cfg(tmp_path), events_fd=7, platform="darwin")
    assert command.env.get("MALLOC_MMAP_THRESHOLD_") == os.environ.get("MALLOC_MMAP_THRESHOLD_")


# -- rlimits ---------------------------------------------------------------------------------

LIMITS_PROBE = """
import errno, json, resource, sys
from sharpmld.worker import limits
limits.apply(json.loads(sys.argv[1])["limits"])
out = {name: resource.getrlimit(getattr(resource, name))[0]
       for name in ("RLIMIT_CPU", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_AS", "RLIMIT_CORE")}
try:
    with open(sys.argv[2], "wb") as f:
        f.write(b"x" * (3 << 20))
    out["big_write"] = "written"
except OSError as exc:
    out["big_write"] = errno.errorcode[exc.errno]
print(json.dumps(out))
"""


def run_limits(tmp_path: Path, **worker: Any) -> dict[str, Any]:
    command = spawn.worker_command(cfg(tmp_path, **worker), events_fd=7)
    settings = json.dumps(settings_of(command))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [PY, "-c", LIMITS_PROBE, settings, str(tmp_path / "big.bin")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is applied on Linux")
def test_configured_rlimits_are_in_force_in_the_worker(tmp_path: Path) -> None:
    got = run_limits(
        tmp_path, max_cpu_seconds=7, max_open_files=64, max_file_size_mb=2, max_address_space_mb=4096
    )
    assert got["RLIMIT_CPU"] == 7
    assert got["RLIMIT_NOFILE"] == 64
    assert got["RLIMIT_FSIZE"] == 2 << 20
    assert got["RLIMIT_AS"] == 4096 << 20
    assert got["RLIMIT_CORE"] == 0
    assert got["big_write"] == "EFBIG"  # a write past the limit fails; it does not kill the worker


def test_zero_limits_inherit_the_daemons(tmp_path: Path) -> None:
    import resource

    got = run_limits(
        tmp_path, max_cpu_seconds=0, max_open_files=0, max_file_size_mb=0, max_address_space_mb=0
    )
    for name in ("RLIMIT_CPU", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_AS"):
        assert got[name] == resource.getrlimit(getattr(resource, name))[0], name
    assert got["big_write"] == "written"


def test_launch_can_send_what_the_worker_prints_to_another_descriptor(tmp_path: Path) -> None:
    """predict keeps stdout for its answer: a worker's prints must land where it says."""
    printed = tmp_path / "printed"
    command = spawn.WorkerCommand(
        argv=[sys.executable, "-c", "print('hello from ml-sharp')"], env=dict(os.environ), pass_fds=()
    )
    with printed.open("wb") as sink:
        child = spawn.launch(command, stdout=sink.fileno())
        harness.wait_for(lambda: child.poll() is not None, 30, "the child to exit")
    child.close()
    assert child.poll() == 0
    assert printed.read_text() == "hello from ml-sharp\n"
