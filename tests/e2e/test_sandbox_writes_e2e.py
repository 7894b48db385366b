"""Every file the worker writes in a real run lies where the macOS sandbox profile allows.

macOS cannot be run here, so the worker's writes are recorded on Linux instead: the real
daemon runs a tiny-model job with ``[worker] python`` set to a wrapper that runs the worker
under ``strace``, and each path it created, opened for writing, renamed or removed is checked
against the folders ``sandbox.writable_folders`` hands to the profile. The worker's code is
the same on both platforms; what torch and Metal write on a Mac is what the profile's fixed
system folders (``/private/var/folders`` ...) cover and this test cannot see.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from sharpmld.supervisor import sandbox
from tests.intake import corpus
from tests.support import harness
from tests.support.harness import Daemon, jobs, wait_for

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not shutil.which("strace") or not sys.platform.startswith("linux"), reason="strace"),
]

CALLS = (
    "open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir,truncate,link,symlink"
)
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")
DIRFD_PATH = re.compile(r'(AT_FDCWD|\d+<([^>]*)>), "([^"]*)"')
PLAIN_PATH = re.compile(r'^\w+\("([^"]*)"(?:, "([^"]*)")?')


def written_paths(trace: str, cwd: Path) -> set[str]:
    """The paths of the successful writing calls in an ``strace -f -y`` log."""
    out: set[str] = set()
    for line in trace.splitlines():
        line = re.sub(r"^\d+\s+", "", line)
        call = line.split("(", 1)[0]
        if not re.search(r"\) = \d+", line):
            continue  # failed or unfinished: nothing was written
        if call in ("open", "openat") and not any(flag in line for flag in WRITE_FLAGS):
            continue
        pairs = DIRFD_PATH.findall(line)
        if pairs:
            names = [os.path.join(base or str(cwd), name) for _, base, name in pairs]
        else:
            match = PLAIN_PATH.match(line)
            names = [os.path.join(str(cwd), n) for n in (match.groups() if match else ()) if n]
        out.update(os.path.realpath(n) for n in names)
    return out


def allowed(path: str, folders: list[str]) -> bool:
    return path in sandbox.DEVICES_WRITABLE or any(
        path == f or path.startswith(f.rstrip("/") + "/") for f in folders
    )


def test_the_worker_writes_only_where_the_macos_profile_allows(
    tmp_path: Path, checkpoint: Path, daemons: list[Daemon]
) -> None:
    root = tmp_path / "root"
    trace = tmp_path / "worker.strace"
    wrapper = tmp_path / "traced-python"
    strace = f'strace -f -qq -y -e trace={CALLS} -o "{trace}"'
    wrapper.write_text(f'#!/bin/sh\nexec {strace} "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    harness.write_config(root, checkpoint, worker={"python": str(wrapper)})
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(3)
    for i in range(2):
        corpus.write_png(src / f"p{i}.png", (rng.random((40, 50, 3)) * 255).astype(np.uint8))
    temp = tmp_path / "T"  # its own TMPDIR: the root itself lies under /tmp
    temp.mkdir()
    d = Daemon(root, extra_env={"TMPDIR": str(temp)})
    daemons.append(d)
    shutil.copytree(src, root / "inbox" / "one")
    wait_for(lambda: len(jobs(root, "done")) == 1, 120, lambda: d.text()[-3000:])
    assert d.stop() == 0
    text = trace.read_text()

    folders = list(sandbox.writable_folders(root, {"TMPDIR": str(temp)}).values())
    written = written_paths(text, tmp_path)
    job_writes = [p for p in written if p.startswith(os.path.realpath(root / "working") + "/")]
    assert job_writes, "no write into working/ recorded: the trace saw nothing of the job"
    outside = sorted(p for p in written if not allowed(p, folders))
    assert outside == [], f"the worker wrote outside the allowed folders {folders}: {outside}"
