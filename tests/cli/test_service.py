"""Running at login: the launchd plist, the systemd unit, ``sharpmld launchd``, the access probe.

Nothing here touches the real ~/Library or runs the real launchctl: HOME is a temp folder,
and ``launchctl`` is a fake shell script first on PATH (or absent altogether).
"""

from __future__ import annotations

import errno
import os
import plistlib
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sharpmld.cli.codes import RET_FAILURE, RET_NOT_FOUND, RET_OK, RET_USAGE
from sharpmld.cli.service import launchd, systemd, templates
from sharpmld.core import config
from sharpmld.core.errors import SharpmldError
from sharpmld.core.fsio import TEMP_PREFIX
from sharpmld.core.macos import full_disk_access_advice
from sharpmld.daemon import access
from sharpmld.queue.layout import STATES
from tests.support import harness

LABEL = launchd.DEFAULT_LABEL
HOSTILE = "my <root> & 'quoted' \"double\" 50% $HOME {{HOME}}"
PLIST_KEYS = {
    "Label",
    "ProgramArguments",
    "RunAtLoad",
    "KeepAlive",
    "ThrottleInterval",
    "ProcessType",
    "ExitTimeOut",
    "StandardOutPath",
    "StandardErrorPath",
    "EnvironmentVariables",
    "WorkingDirectory",
    "LimitLoadToSessionType",
}
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
ROOT_SKIP = "runs as root, and root bypasses file permissions: chmod 000 cannot deny it anything"


def make_config(root: Path, grace: float | None = None) -> config.Config:
    """A configuration for ``root``; with ``grace``, from a sharpmld.toml that sets it."""
    if grace is not None:
        root.mkdir(parents=True, exist_ok=True)
        lease = max(120.0, 2 * grace)  # the grace must stay shorter than the lease timeout
        (root / config.CONFIG_NAME).write_text(
            f"[queue]\nshutdown_grace_seconds = {grace}\nlease_timeout_seconds = {lease}\n"
        )
    return config.load(root=root, environ={})


def parsed_plist(cfg: config.Config, python: str = sys.executable) -> dict[str, Any]:
    data: dict[str, Any] = plistlib.loads(launchd.render_plist(cfg, python=python))
    return data


# --- the plist --------------------------------------------------------------------------------


def test_plist_has_every_key_with_the_right_type_and_value(tmp_path: Path, home: Path) -> None:
    root = tmp_path / "root"
    cfg = make_config(root, grace=100)
    data = parsed_plist(cfg)

    assert set(data) == PLIST_KEYS
    assert data["Label"] == "com.sharpml.sharpmld"
    args = data["ProgramArguments"]
    assert args == [
        sys.executable,
        "-m",
        "sharpmld",
        "run",
        "--root",
        str(root),
        "--config",
        str(root / config.CONFIG_NAME),
    ]
    assert os.path.isabs(args[0])
    assert data["RunAtLoad"] is True
    assert data["KeepAlive"] == {"SuccessfulExit": False}
    assert data["KeepAlive"]["SuccessfulExit"] is False
    assert isinstance(data["ThrottleInterval"], int) and data["ThrottleInterval"] >= 10
    assert data["ProcessType"] == "Standard"
    assert data["LimitLoadToSessionType"] == "Aqua"
    assert isinstance(data["ExitTimeOut"], int)
    assert data["ExitTimeOut"] >= 100 + 10, "grace plus a margin to stop the worker"
    # HOME, not the root: a root on a volume not mounted yet must not make launchd exit 78
    # before sharpmld can say what is wrong.
    assert data["WorkingDirectory"] == str(home)
    logs = home / "Library" / "Logs" / "sharpmld"
    assert Path(data["StandardOutPath"]).parent == logs
    assert Path(data["StandardErrorPath"]).parent == logs
    assert data["StandardOutPath"] != data["StandardErrorPath"]
    env = data["EnvironmentVariables"]
    assert isinstance(env, dict) and all(isinstance(v, str) for v in env.values())
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTORCH_ENABLE_MPS_FALLBACK"] == "1"
    assert env["HOME"] == str(home)
    assert env["PATH"].split(":")[0] == os.path.dirname(sys.executable)
    # Homebrew's bin (Apple Silicon, then Intel) for hook commands given by bare name.
    assert env["PATH"].split(":")[1:3] == ["/opt/homebrew/bin", "/usr/local/bin"]
    assert env["SHARPMLD_LAUNCHD_LOG"] == str(logs / "sharpmld")  # the logs capped at start


def test_plist_without_a_config_file_has_no_config_argument(tmp_path: Path, home: Path) -> None:
    cfg = make_config(tmp_path / "root")
    assert cfg.path is None
    data = parsed_plist(cfg)
    assert data["ProgramArguments"][1:] == ["-m", "sharpmld", "run", "--root", str(tmp_path / "root")]
    assert "--config" not in data["ProgramArguments"]
    assert data["ExitTimeOut"] >= 60, "the default 30 s grace still gets at least a minute"


def test_exit_timeout_covers_the_configured_grace(tmp_path: Path, home: Path) -> None:
    for grace in (1, 30, 59.5, 600):
        cfg = make_config(tmp_path / f"root-{grace}", grace=grace)
        timeout = parsed_plist(cfg)["ExitTimeOut"]
        assert timeout >= 60 and timeout >= grace + 10, (grace, timeout)
        assert timeout == templates.stop_timeout(cfg)


def test_plist_keeps_the_venv_python_symlink_and_makes_it_absolute(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    link = venv_bin / "python"
    link.symlink_to(sys.executable)
    cfg = make_config(tmp_path / "root")
    assert parsed_plist(cfg, python=str(link))["ProgramArguments"][0] == str(link)

    monkeypatch.chdir(tmp_path)
    data = parsed_plist(cfg, python=os.path.join("venv", "bin", "python"))
    assert data["ProgramArguments"][0] == str(link), "relative made absolute, not resolved"
    assert data["EnvironmentVariables"]["PATH"].startswith(f"{venv_bin}:")


def test_plist_round_trips_and_is_canonical(tmp_path: Path, home: Path) -> None:
    raw = launchd.render_plist(make_config(tmp_path / "root", grace=45))
    data = plistlib.loads(raw)
    assert plistlib.loads(plistlib.dumps(data)) == data
    assert plistlib.dumps(data, sort_keys=True) == raw
    assert raw.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert b"{{" not in raw


def test_hostile_root_is_escaped_and_comes_back_exactly(tmp_path: Path, home: Path) -> None:
    root = tmp_path / HOSTILE
    cfg = make_config(root, grace=30)
    raw = launchd.render_plist(cfg)
    assert b"&amp;" in raw and b"&lt;root&gt;" in raw
    data = plistlib.loads(raw)
    assert data["ProgramArguments"][5] == str(root)
    assert data["ProgramArguments"][7] == str(root / config.CONFIG_NAME)
    assert data["ProgramArguments"][5] == str(root)
    assert plistlib.loads(plistlib.dumps(data)) == data


@pytest.mark.parametrize("char", ["\x01", "\r"])
def test_a_root_a_plist_cannot_hold_is_refused(tmp_path: Path, home: Path, char: str) -> None:
    cfg = config.Config(root=tmp_path / f"bad{char}root", path=None)
    with pytest.raises(SharpmldError, match="plist"):
        launchd.render_plist(cfg)


def test_plist_path_and_label(home: Path) -> None:
    assert launchd.plist_path(LABEL) == home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
    for bad in ("../evil", "a/b", "", ".hidden"):
        with pytest.raises(SharpmldError, match="label"):
            launchd.plist_path(bad)


def test_another_label_logs_under_its_own_name(tmp_path: Path, home: Path) -> None:
    data = plistlib.loads(
        launchd.render_plist(make_config(tmp_path / "root"), label="com.example.sharpmld-2")
    )
    assert data["Label"] == "com.example.sharpmld-2"
    assert Path(data["StandardOutPath"]).name == "com.example.sharpmld-2.log"


# --- the systemd unit -------------------------------------------------------------------------


def unit_settings(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key, value)
    return out


def test_systemd_unit(tmp_path: Path) -> None:
    root = tmp_path / "my photos"
    cfg = make_config(root, grace=100)
    text = systemd.render_systemd(cfg, python=sys.executable)
    assert "{{" not in text
    settings = unit_settings(text)
    assert settings["Type"] == "simple"
    assert settings["Restart"] == "on-failure"
    assert settings["RestartSec"] == "10"
    assert settings["KillSignal"] == "SIGTERM"
    assert settings["TimeoutStopSec"] == str(templates.stop_timeout(cfg))
    assert int(settings["TimeoutStopSec"]) >= 100
    assert settings["Environment"] == "PYTHONUNBUFFERED=1"
    assert settings["WantedBy"] == "default.target"
    assert settings["WorkingDirectory"] == str(root)
    assert f'--root "{root}"' in settings["ExecStart"]
    assert shlex.split(settings["ExecStart"]) == [
        sys.executable,
        "-m",
        "sharpmld",
        "run",
        "--root",
        str(root),
        "--config",
        str(root / config.CONFIG_NAME),
    ]
    assert "[Service]" in text and "[Install]" in text


def test_systemd_quoting() -> None:
    q = templates.systemd_quote
    assert q("/usr/bin/python3") == "/usr/bin/python3"
    assert q("--root") == "--root"
    assert q("/a b") == '"/a b"'
    assert q('/a "b"') == '"/a \\"b\\""'
    assert q("/a\\b") == '"/a\\\\b"'
    assert q("/100%") == '"/100%%"', "systemd specifiers"
    assert q("/$HOME x") == '"/$$HOME x"', "systemd variable expansion"
    with pytest.raises(SharpmldError, match="control character"):
        q("/a\nb")


def test_systemd_unit_for_a_hostile_root(tmp_path: Path) -> None:
    root = tmp_path / HOSTILE
    text = systemd.render_systemd(make_config(root), python=sys.executable)
    settings = unit_settings(text)
    expected_word = templates.systemd_quote(str(root))
    assert settings["ExecStart"].endswith(f"--root {expected_word}")
    assert "%%" in expected_word and "$$HOME" in expected_word
    assert settings["WorkingDirectory"] == str(root).replace("%", "%%")


# --- the command line -------------------------------------------------------------------------


# launchctl(1) as documented: print of a loaded service shows "state = running" and its pid
# (or "state = not running"); 113 for one launchd does not know; bootout 3 (ESRCH) when not
# loaded; kill SIGTERM signals the job and returns at once; kickstart starts it (-k: kills it
# first); a bootstrapped job starts at once (RunAtLoad).
FAKE_LAUNCHCTL = r"""#!/bin/sh
(IFS=$(printf '\t'); printf '%s\n' "$*") >> @CALLS@
LOADED=@LOADED@
RUNNING=@LOADED@.running
case "$1" in
print)
  if [ -f "$LOADED" ]; then
    if [ -f "$RUNNING" ]; then
      printf '%s\n' "$2 = {" "    state = running" "    pid = 4242" "    last exit code = 0" "}"
    else
      printf '%s\n' "$2 = {" "    state = not running" "    last exit code = 0" "}"
    fi
    exit 0
  fi
  echo "Could not find service in domain for port" >&2; exit 113;;
bootstrap)
  if [ -n "$FAKE_BOOTSTRAP_FAILS" ]; then
    echo "Bootstrap failed: 5: Input/output error" >&2; exit 5
  fi
  touch "$LOADED" "$RUNNING";;
bootout)
  [ -f "$LOADED" ] || { echo "Boot-out failed: 3: No such process" >&2; exit 3; }
  rm -f "$LOADED" "$RUNNING";;
kill)
  [ -f "$LOADED" ] || { echo "Could not find service" >&2; exit 113; }
  rm -f "$RUNNING";;
kickstart)
  [ -f "$LOADED" ] || { echo "Could not find service" >&2; exit 113; }
  touch "$RUNNING";;
esac
"""


def fake_launchctl(folder: Path) -> tuple[Path, Path]:
    """A ``launchctl`` that logs each call (arguments tab-separated) and remembers loading."""
    folder.mkdir(parents=True, exist_ok=True)
    calls, loaded = folder / "calls.log", folder / "loaded"
    script = folder / "launchctl"
    script.write_text(
        FAKE_LAUNCHCTL.replace("@CALLS@", shlex.quote(str(calls))).replace(
            "@LOADED@", shlex.quote(str(loaded))
        )
    )
    script.chmod(0o755)
    return script, calls


def calls_of(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [line.split("\t") for line in log.read_text().splitlines()]


def launchd_cli(
    tmp_path: Path, root: Path, *args: str, path: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"HOME": str(home), "PATH": path, **(extra or {})}
    proc = harness.cli(root, "launchd", *args, "--root", str(root), extra_env=env)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


def test_launchd_help(tmp_path: Path) -> None:
    proc = harness.cli(tmp_path / "root", "launchd", "--help")
    assert proc.returncode == RET_OK, proc.stderr
    assert proc.stdout.startswith("usage: sharpmld launchd")
    for action in ("install", "uninstall", "status", "print", "--systemd", "--root", "--config"):
        assert action in proc.stdout
    assert "launchd" in harness.cli(tmp_path / "root", "--help").stdout


def test_print_outputs_a_valid_plist(tmp_path: Path) -> None:
    root = tmp_path / "root"
    proc = launchd_cli(tmp_path, root, "print", path=os.environ.get("PATH", ""))
    assert proc.returncode == RET_OK, proc.stderr
    data = plistlib.loads(proc.stdout.encode("utf-8"))
    assert data["ProgramArguments"][0] == sys.executable
    assert data["ProgramArguments"][4:6] == ["--root", str(root)]
    assert data["StandardOutPath"].startswith(str(tmp_path / "home" / "Library" / "Logs" / "sharpmld"))
    assert not (tmp_path / "home" / "Library").exists(), "print writes nothing"


def test_print_systemd_and_systemd_elsewhere_is_a_usage_error(tmp_path: Path) -> None:
    root = tmp_path / "my root"
    proc = launchd_cli(tmp_path, root, "print", "--systemd", path=os.environ.get("PATH", ""))
    assert proc.returncode == RET_OK, proc.stderr
    assert f'--root "{root}"' in unit_settings(proc.stdout)["ExecStart"]
    proc = launchd_cli(tmp_path, root, "install", "--systemd", path=os.environ.get("PATH", ""))
    assert proc.returncode == RET_USAGE
    assert "print --systemd" in proc.stderr


def test_print_with_a_bad_config_exits_3(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / config.CONFIG_NAME).write_text('[queue]\nshutdown_grace_seconds = "soon"\n')
    proc = launchd_cli(tmp_path, root, "print", path=os.environ.get("PATH", ""))
    assert proc.returncode == 3
    assert "queue.shutdown_grace_seconds" in proc.stderr


def test_install_status_restart_uninstall_with_a_fake_launchctl(tmp_path: Path) -> None:
    root = tmp_path / "photo root"
    harness.write_config(root, tmp_path / "tiny.pt")
    fake, log = fake_launchctl(tmp_path / "fakebin")
    path = f"{fake.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    home = tmp_path / "home"
    plist = home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
    uid = str(os.getuid())

    proc = launchd_cli(tmp_path, root, "install", path=path)
    assert proc.returncode == RET_OK, proc.stderr
    assert plist.is_file()
    assert stat.S_IMODE(plist.stat().st_mode) == 0o644
    data = plistlib.loads(plist.read_bytes())
    assert data["ProgramArguments"][5] == str(root)
    assert data["ProgramArguments"][7] == str(root / config.CONFIG_NAME)
    assert (home / "Library" / "Logs" / "sharpmld").is_dir()
    assert not [p for p in plist.parent.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert calls_of(log) == [
        ["print", f"gui/{uid}/{LABEL}"],
        ["enable", f"gui/{uid}/{LABEL}"],  # a user's "off" switch would fail the bootstrap
        ["bootstrap", f"gui/{uid}", str(plist)],
    ]
    assert str(plist) in proc.stdout

    proc = launchd_cli(tmp_path, root, "status", path=path)
    assert proc.returncode == RET_OK, proc.stderr
    assert "is loaded" in proc.stdout and "4242" in proc.stdout and "running" in proc.stdout

    log.unlink()
    proc = launchd_cli(tmp_path, root, "install", path=path)
    assert proc.returncode == RET_OK, proc.stderr
    assert calls_of(log) == [
        ["print", f"gui/{uid}/{LABEL}"],
        ["bootout", f"gui/{uid}/{LABEL}"],
        ["print", f"gui/{uid}/{LABEL}"],  # gone: nothing to wait for
        ["enable", f"gui/{uid}/{LABEL}"],
        ["bootstrap", f"gui/{uid}", str(plist)],
    ], "reinstalling reloads the agent"

    log.unlink()
    proc = launchd_cli(tmp_path, root, "restart", path=path)
    assert proc.returncode == RET_OK, proc.stderr
    service = f"gui/{uid}/{LABEL}"
    assert calls_of(log) == [
        ["print", service],
        ["kill", "SIGTERM", service],  # not kickstart -k: that is SIGKILL, the job is lost
        ["print", service],  # not running any more
        ["kickstart", service],
    ]

    log.unlink()
    proc = launchd_cli(tmp_path, root, "uninstall", path=path)
    assert proc.returncode == RET_OK, proc.stderr
    assert calls_of(log) == [
        ["bootout", f"gui/{uid}/{LABEL}"],
        ["print", f"gui/{uid}/{LABEL}"],  # gone: nothing to wait for
    ]
    assert not plist.exists()

    proc = launchd_cli(tmp_path, root, "uninstall", path=path)
    assert proc.returncode == RET_OK, proc.stderr
    assert "not installed" in proc.stdout
    proc = launchd_cli(tmp_path, root, "status", path=path)
    assert proc.returncode == RET_NOT_FOUND
    assert "not installed" in proc.stdout


def test_install_reports_a_failed_bootstrap(tmp_path: Path) -> None:
    root = tmp_path / "root"
    fake, log = fake_launchctl(tmp_path / "fakebin")
    path = f"{fake.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    proc = launchd_cli(tmp_path, root, "install", path=path, extra={"FAKE_BOOTSTRAP_FAILS": "1"})
    assert proc.returncode == RET_FAILURE
    assert "Input/output error" in proc.stderr
    assert "logged in" in proc.stderr
    assert calls_of(log)[-1][0] == "bootstrap"


def test_without_launchctl_install_points_to_systemd(tmp_path: Path) -> None:
    root = tmp_path / "root"
    empty = tmp_path / "empty-path"
    empty.mkdir()
    proc = launchd_cli(tmp_path, root, "install", path=str(empty))
    assert proc.returncode == RET_FAILURE
    assert "macOS-only" in proc.stderr
    assert "systemd" in proc.stderr
    assert "sharpmld launchd print --systemd" in proc.stderr
    assert f"--root {root}" in proc.stderr
    assert "~/.config/systemd/user/sharpmld.service" in proc.stderr
    assert "systemctl --user daemon-reload && systemctl --user enable --now sharpmld" in proc.stderr
    assert not (tmp_path / "home" / "Library").exists()

    for action in ("uninstall", "status", "restart"):
        proc = launchd_cli(tmp_path, root, action, path=str(empty))
        assert proc.returncode == RET_FAILURE, action
        assert "systemctl --user" in proc.stderr, action

    proc = launchd_cli(tmp_path, root, "print", path=str(empty))
    assert proc.returncode == RET_OK, "print works everywhere"
    plistlib.loads(proc.stdout.encode("utf-8"))


def test_launchd_print_does_not_import_torch_or_numpy(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from sharpmld.cli.main import main\n"
        f"code = main(['launchd', 'print', '--root', {str(tmp_path / 'root')!r}])\n"
        "print('launchd', code, 'torch' in sys.modules, 'numpy' in sys.modules, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=harness.env({"HOME": str(tmp_path)}),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "launchd 0 False False" in proc.stderr.splitlines()


def test_the_access_check_gives_the_full_disk_access_advice(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    advice = full_disk_access_advice()
    assert os.path.realpath(sys.executable) in advice and "Privacy & Security" in advice
    root = tmp_path / "root"
    make_tree(root)

    def refuse(path: Any) -> list[str]:
        raise PermissionError(errno.EPERM, "Operation not permitted", str(path))

    monkeypatch.setattr(access.os, "listdir", refuse)
    (problem,) = access.probe_access(root, macos=True)
    assert advice in problem


# --- the start-up access probe ----------------------------------------------------------------


def make_tree(root: Path) -> None:
    for state in STATES:
        (root / state).mkdir(parents=True, exist_ok=True)


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def test_probe_access_on_a_good_or_missing_tree(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert access.probe_access(root) == [], "a missing root will be created"
    root.mkdir()
    assert access.probe_access(root) == [], "missing state folders will be created"
    make_tree(root)
    assert access.probe_access(root) == []
    assert leftovers(root) == []
    access.require_access(root)


def test_probe_access_root_is_a_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.write_text("not a folder")
    problems = access.probe_access(root)
    assert len(problems) == 1 and "not a folder" in problems[0] and str(root) in problems[0]


@pytest.mark.skipif(AS_ROOT, reason=ROOT_SKIP)
def test_probe_access_chmod_000_folder(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_tree(root)
    inbox = root / "inbox"
    inbox.chmod(0)
    try:
        problems = access.probe_access(root, macos=False)
        assert len(problems) == 1, problems
        assert f"cannot list {inbox}" in problems[0]
        assert "EACCES" in problems[0] and "ls -ld" in problems[0]
        assert "Full Disk Access" not in problems[0]

        mac = access.probe_access(root, macos=True)
        assert len(mac) == 1 and "Full Disk Access" in mac[0]
        assert os.path.realpath(sys.executable) in mac[0]

        with pytest.raises(SharpmldError, match="inbox"):
            access.require_access(root)
    finally:
        inbox.chmod(0o755)


@pytest.mark.skipif(AS_ROOT, reason=ROOT_SKIP)
def test_probe_access_read_only_folder_and_parent(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_tree(root)
    (root / "done").chmod(0o555)
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        problems = access.probe_access(root, macos=False)
        assert len(problems) == 1 and f"cannot create files in {root / 'done'}" in problems[0]
        missing = parent / "root"
        problems = access.probe_access(missing, macos=False)
        assert len(problems) == 1 and f"create {missing}" in problems[0], problems
    finally:
        (root / "done").chmod(0o755)
        parent.chmod(0o755)


def test_probe_access_names_full_disk_access_for_eperm_on_macos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TCC answers EPERM even to root; simulated here so that the test runs as any user."""
    root = tmp_path / "root"
    make_tree(root)
    real_listdir = os.listdir

    def listdir(path: Any) -> list[str]:
        if Path(path) == root / "working":
            raise PermissionError(errno.EPERM, "Operation not permitted", str(path))
        return real_listdir(path)

    monkeypatch.setattr(access.os, "listdir", listdir)
    mac = access.probe_access(root, macos=True)
    assert len(mac) == 1, mac
    assert f"cannot list {root / 'working'}" in mac[0] and "EPERM" in mac[0]
    assert "Full Disk Access" in mac[0] and "Privacy & Security" in mac[0]
    assert os.path.realpath(sys.executable) in mac[0]
    linux = access.probe_access(root, macos=False)
    assert len(linux) == 1 and "Full Disk Access" not in linux[0]

    def refuse_writes(folder: Path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(folder))

    monkeypatch.setattr(access, "_try_write", refuse_writes)
    problems = access.probe_access(root, macos=True)
    assert len(problems) == 5, "writes fail in the root and inbox, done, failed; listing in working"
    assert all("Full Disk Access" in p for p in problems)
    assert sum("cannot create files in" in p for p in problems) == 4


def test_probe_access_does_not_count_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    make_tree(root)

    def disk_full(folder: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(folder))

    monkeypatch.setattr(access, "_try_write", disk_full)
    assert access.probe_access(root, macos=True) == []
