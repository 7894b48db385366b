"""Start-up and periodic recovery of jobs left in ``working/`` by a daemon that died.

Only jobs whose owner is provably gone are touched (see ``lease``). A half-built claim (no
input inside) is removed; a real job is adopted, its partial outputs removed, and retried.
Adoption is made exclusive by creating a marker file with O_EXCL, so two daemons recovering at
once never both adopt a job.

Adopting a job means its daemon died: that is counted in ``daemon_restarts``, not in the
job's attempts (nothing says the job was at fault), and a try it left ``running`` is closed
as ``daemon_died``. The daemon fails the job once either count reaches its limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from sharpmld.core import fsio
from sharpmld.core.faults import crashpoint
from sharpmld.queue.jobid import is_job_id
from sharpmld.queue.layout import (
    INPUT_DIR,
    JOB_FILE,
    JOB_LOG,
    LEASE_FILE,
    Layout,
)
from sharpmld.queue.lease import (
    ADOPT_PREFIX,
    Owner,
    owner_is_gone,
    read_lease,
    server_time,
    write_lease,
)
from sharpmld.queue.record import Job, JobRecord, utcnow

OUTCOME_RUNNING = "running"
OUTCOME_DAEMON_DIED = "daemon_died"


def find_orphans(layout: Layout, owner: Owner, *, lease_timeout: float) -> Iterator[Path]:
    """Job folders in ``working/`` (oldest first) whose owner is gone; sweeps dead staging dirs.

    ``owner`` is the daemon looking, whose probe file reads the file server's clock.
    """
    try:
        names = sorted(os.listdir(layout.working))
    except FileNotFoundError:
        return
    now = server_time(layout.state_dir, owner)
    for name in names:
        path = layout.working / name
        if fsio.is_temp_name(name):
            if _staging_abandoned(path, lease_timeout=lease_timeout, server_now=now):
                shutil.rmtree(path, ignore_errors=True)
            continue
        if not is_job_id(name) or not path.is_dir():
            continue
        if owner_is_gone(read_lease(path), lease_timeout=lease_timeout, server_now=now):
            yield path


def _staging_abandoned(path: Path, *, lease_timeout: float, server_now: float) -> bool:
    """Whether a claim's staging folder was left by a crash, not one being prepared right now.

    With a lease inside, its creator decides, as for a job. ``claim`` creates the folder before
    it writes the lease, so a folder without one may belong to a daemon between those two
    steps: the owner its name carries decides when it is of this host; otherwise (another
    host, an older name) it is abandoned only once older than the lease timeout.
    """
    lease = read_lease(path)
    if lease is not None:
        return owner_is_gone(lease, lease_timeout=lease_timeout, server_now=server_now)
    creator = Owner.from_tag(path.name)
    if creator is not None:
        return not creator.is_alive()
    try:
        st = path.stat()
    except OSError:
        return False
    return server_now - st.st_mtime > lease_timeout


def has_input(path: Path) -> bool:
    """Whether the claim rename happened: the person's data is inside."""
    input_dir = path / INPUT_DIR
    if not input_dir.exists():
        return False
    try:
        record = Job.load(path).record
    except (OSError, ValueError):
        return True
    return record.source == "folder" or any(input_dir.iterdir())


def adopt(path: Path, owner: Owner, *, lease_timeout: float, state_dir: Path) -> Job | None:
    """Take over an orphaned job, or return None if another daemon got it first."""
    try:
        job = Job.load(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        job = Job(path, JobRecord(path.name, path.name, "folder", host="unknown"))
    # One marker per dead owner taken over from: daemons racing to adopt from the same owner
    # collide on it (O_EXCL picks one); a later adoption, from whoever adopted last and died
    # too, gets a fresh name. (Naming it after the job's attempts was wrong: an adopter that
    # died before charging an attempt left a marker that blocked every later adoption.)
    # The marker named after the owner is also what fences that owner (``lease.holds``) should
    # it come back from a pause: it is created before this daemon writes its own lease.
    gone = read_lease(path)
    if not owner_is_gone(gone, lease_timeout=lease_timeout, server_now=server_time(state_dir, owner)):
        return None  # someone adopted it since it was found, and is alive
    if gone is None:
        name = fsio.fit_name(f"{ADOPT_PREFIX}unleased")
    elif gone.released:  # a live owner may release several times
        name = fsio.fit_name(f"{gone.owner.adoption_marker()}-released-{gone.heartbeat:.6f}")
    else:
        name = gone.owner.adoption_marker()
    if not _take_marker(path, name, owner, lease_timeout=lease_timeout, state_dir=state_dir):
        return None
    write_lease(path, owner)
    note_daemon_death(job)
    crashpoint("adopted")
    clean_outputs(path)
    return job


MAX_MARKER_CHAIN = 16


def _take_marker(path: Path, base: str, owner: Owner, *, lease_timeout: float, state_dir: Path) -> bool:
    """Create the adoption marker ``base`` with O_EXCL, naming ``owner`` inside it.

    When it exists, the daemon that made it is adopting right now, or died between making it
    and writing its lease (then the lease still names the dead owner and, without this, no
    one could ever adopt the job again: a burst run would wait on it forever). A marker whose
    maker is gone, on this host by pid and start time, elsewhere by the marker's age on the
    file server's clock, is followed by the next name in a chain, which O_EXCL again gives to
    one daemon only.
    """
    name = base
    for _ in range(MAX_MARKER_CHAIN):
        marker = path / fsio.fit_name(name)
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            maker, made = _marker_maker(marker)
            if maker is not None and maker.on_this_host():
                gone = not maker.is_alive()
            else:
                gone = server_time(state_dir, owner) - made > lease_timeout
            if not gone:
                return False
            name = f"{base}-after-{maker.tag() if maker else f'unnamed{made:.0f}'}"
            continue
        except FileNotFoundError:
            return False  # the job left working/ meanwhile
        try:
            os.write(fd, json.dumps(asdict(owner)).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return True
    return False


def _marker_maker(marker: Path) -> tuple[Owner | None, float]:
    """Who made an adoption marker (None if it died before writing it), and when."""
    try:
        made = marker.stat().st_mtime
        text = marker.read_text("utf-8")
    except OSError:
        return None, 0.0  # gone meanwhile, or unreadable: judged by its age alone
    try:
        data = json.loads(text)
        maker = Owner(
            str(data["host"]), int(data["pid"]), float(data["started"]), str(data.get("host_id", ""))
        )
    except (ValueError, KeyError, TypeError):
        return None, made
    return maker, made


def note_daemon_death(job: Job) -> None:
    """Record that the daemon holding ``job`` died: one more restart, its try closed honestly."""
    record = job.record
    record.daemon_restarts += 1
    for entry in record.history:
        if entry.get("outcome") == OUTCOME_RUNNING:
            entry.update(outcome=OUTCOME_DAEMON_DIED, ended_at=utcnow())
    with contextlib.suppress(FileNotFoundError):
        job.save()


def clean_outputs(path: Path) -> None:
    """Remove what a previous attempt wrote, keeping the input, the record and the log."""
    keep = {INPUT_DIR, JOB_FILE, LEASE_FILE, JOB_LOG}
    for entry in os.scandir(path):
        if entry.name in keep or entry.name.startswith(ADOPT_PREFIX):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


def release(path: Path) -> None:
    """Remove a job folder that never received the person's data (a claim cut short)."""
    shutil.rmtree(path, ignore_errors=True)
