"""``sharpmld launchd ... --web`` and ``--worker URL``: one agent per process, apart.

The fake launchd is the one in test_launchd_waits (launchctl(1) as documented); the plists are
read back with plistlib. What matters: each role runs its own command under its own label,
so installing the web app's agent never reloads or removes the daemon's.
"""

from __future__ import annotations

import io
import plistlib
from pathlib import Path
from typing import Any

import pytest

from sharpmld.cli import main as cli
from sharpmld.cli.codes import RET_OK, RET_USAGE
from sharpmld.cli.service import launchd, plist, roles, systemd
from sharpmld.core import config
from sharpmld.core.errors import SharpmldError
from tests.cli.test_launchd_waits import UID, FakeClock, FakeLaunchd, on_a_mac  # noqa: F401

BROKER = "nats://studio.local:4222"


def _plist(cfg: config.Config, role: roles.Role) -> dict[str, Any]:
    data: dict[str, Any] = plistlib.loads(launchd.render_plist(cfg, python="/venv/bin/python", role=role))
    return data


@pytest.mark.parametrize(
    ("role", "command", "label"),
    [
        (roles.DAEMON, ["run"], "com.sharpml.sharpmld"),
        (roles.WEB, ["serve"], "com.sharpml.sharpmld.web"),
        (roles.worker(BROKER), ["worker", "--cluster", BROKER], "com.sharpml.sharpmld.worker"),
    ],
)
def test_each_role_runs_its_own_command_under_its_own_label(
    tmp_path: Path, home: Path, role: roles.Role, command: list[str], label: str
) -> None:
    cfg = config.load(root=tmp_path / "root", environ={})
    data = _plist(cfg, role)
    root = str((tmp_path / "root").absolute())
    assert data["ProgramArguments"] == ["/venv/bin/python", "-m", "sharpmld", *command, "--root", root]
    assert data["Label"] == label
    # Logs apart too: two agents writing one file would interleave and cap each other.
    assert data["StandardOutPath"].endswith(f"/{plist.log_name(label)}.log")
    unit = systemd.render_systemd(cfg, python="/venv/bin/python", role=role)
    assert f"ExecStart=/venv/bin/python -m sharpmld {' '.join(command)} --root {root}\n" in unit
    assert f"enable --now {role.unit}\n" in unit


def test_the_config_file_follows_the_command_in_every_role(tmp_path: Path, home: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / config.CONFIG_NAME).write_text("[web]\nport = 9000\n")
    cfg = config.load(root=root, environ={})
    args = _plist(cfg, roles.WEB)["ProgramArguments"]
    assert args[3:] == ["serve", "--root", str(root), "--config", str(root / config.CONFIG_NAME)]


@pytest.mark.parametrize("url", ["", "studio.local:4222", "http://studio:4222", "nats://a b", "nats://x\n"])
def test_a_worker_agent_needs_a_broker_url(url: str) -> None:
    with pytest.raises(SharpmldError, match="broker's URL"):
        roles.worker(url)


def test_web_and_worker_together_are_refused_by_the_command_line(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["launchd", "print", "--root", str(tmp_path), "--web", "--worker", BROKER])
    assert exited.value.code == RET_USAGE
    err = io.StringIO()
    from sharpmld.cli import service

    code = service.command(
        "print", lambda: config.load(root=tmp_path, environ={}), web=True, worker=BROKER, err=err
    )
    assert code == RET_USAGE and "one at a time" in err.getvalue()


def test_installing_the_web_agent_leaves_the_daemons_agent_alone(on_a_mac: config.Config) -> None:  # noqa: F811
    clock = FakeClock()
    fake = FakeLaunchd(clock, loaded=False, running=False)
    out, err = io.StringIO(), io.StringIO()
    code = launchd.install(
        on_a_mac, python="/venv/bin/python", role=roles.WEB, runner=fake, clock=clock, out=out, err=err
    )
    assert code == RET_OK, err.getvalue()
    web = f"gui/{UID}/{roles.WEB.label}"
    assert ("enable", web) in fake.calls
    assert all(roles.DAEMON.label not in " ".join(c).replace(roles.WEB.label, "") for c in fake.calls)
    written = plist.plist_path(roles.WEB.label)
    assert plistlib.loads(written.read_bytes())["ProgramArguments"][3] == "serve"
    assert not plist.plist_path(roles.DAEMON.label).exists()
    assert "the sharpmld web app runs now" in out.getvalue()
    assert "`sharpmld launchd status --web`" in out.getvalue()


def test_without_launchctl_each_role_points_to_its_own_systemd_unit() -> None:
    text = systemd.instead_of_launchd("install", None, roles.worker(BROKER))
    assert (
        f"sharpmld launchd print --systemd --worker {BROKER} > ~/.config/systemd/user/sharpmld-worker.service"
        in text
    )
    assert "enable --now sharpmld-worker" in text
    assert "restart sharpmld-web" in systemd.instead_of_launchd("restart", None, roles.WEB)
