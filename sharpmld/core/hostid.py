"""Which machine this is, told apart from every other machine sharing a root.

Host names do not do it: cloned Mac minis share one, and macOS changes it with the network
("Studio-Mini.local" on one Wi-Fi, "Studio-Mini-2.local" after a name clash). A lease that
names its owner by host name then makes a daemon treat another machine's live job as its own
(and judge it by a pid that means nothing here), or its own job as another machine's.

So each machine gets a random id, created once and kept in a per-machine file. It cannot live
in the root's ``.sharpmld`` folder, which every host of a shared root sees. A disk cloned onto
another machine carries the file along, so the file also records the machine's own hardware
fingerprint (macOS: the IOPlatformUUID that ``ioreg`` shows; Linux: ``/etc/machine-id``, see
machine-id(5)); when that no longer matches, this is another machine and it takes a new id.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from sharpmld.core import fsio

HOST_ID_FILE = "host-id.json"
MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))


def default_folder() -> Path:
    """The per-machine, per-user folder for the id (not in the shared root)."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "sharpmld"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sharpmld"


def hardware_fingerprint() -> str:
    """What the operating system says this machine is, or "" when it says nothing."""
    if sys.platform == "darwin":
        return _ioreg_platform_uuid()
    for path in MACHINE_ID_FILES:
        with contextlib.suppress(OSError):
            text = path.read_text("ascii").strip()
            if text:
                return text
    return ""


def _ioreg_platform_uuid() -> str:
    """IOPlatformUUID from ``ioreg -rd1 -c IOPlatformExpertDevice`` (the hardware UUID)."""
    try:
        out = subprocess.run(
            ["/usr/sbin/ioreg", "-rd1", "-c", "IOPlatformExpertDevice"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    for line in out.splitlines():
        if "IOPlatformUUID" in line and "=" in line:
            return line.split("=", 1)[1].strip().strip('"')
    return ""


def host_id(folder: Path | None = None, *, fingerprint: Callable[[], str] = hardware_fingerprint) -> str:
    """This machine's id: read from ``folder``, or created there once (O_EXCL) when missing.

    Two daemons starting at once on one machine agree: the file is created exclusively and
    the loser reads the winner's. When the file cannot be kept (a read-only home), the id is
    derived from the hardware fingerprint alone, or, without one, made up for this process:
    still never another machine's.
    """
    folder = default_folder() if folder is None else folder
    path = folder / HOST_ID_FILE
    machine = fingerprint()
    known = _read(path)
    if known is not None and known.get("machine", "") == machine:
        return known["id"]
    fresh = {"id": uuid.uuid4().hex, "machine": machine}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if known is None:
            try:
                _create_exclusive(path, fresh)
                return fresh["id"]
            except FileExistsError:  # another daemon of this machine made it first, or junk
                raced = _read(path)
                if raced is not None and raced.get("machine", "") == machine:
                    return raced["id"]
        # a damaged file, or a cloned disk whose file names another machine: take our own id
        fsio.write_json(path, fresh)
    except OSError:
        if machine:
            return uuid.uuid5(uuid.NAMESPACE_OID, machine).hex
    return fresh["id"]


def _create_exclusive(path: Path, content: dict[str, str]) -> None:
    """Write ``content`` under a temp name, then link it in: the file appears whole or not."""
    tmp = fsio.temp_name_for(path)
    fsio.write_json(tmp, content)
    try:
        os.link(tmp, path)  # fails with FileExistsError when another process got there first
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsio.fsync_dir(path.parent)


def _read(path: Path) -> dict[str, str] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        return None
    return {"id": data["id"], "machine": str(data.get("machine", ""))}
