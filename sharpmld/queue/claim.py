"""Claiming: moving a ready inbox entry into ``working/`` with one rename.

The job folder is prepared first under a temp name (record and lease inside), published with a
rename, and only then does the person's data move, in the single rename that is the claim.
Whoever loses that rename to another daemon sharing the root gets ENOENT and quietly lets go;
a rename the system refuses (EACCES, EPERM) removes the prepared job folder and raises
``ClaimRefused``, so that only that refusal (not, say, an unwritable ``working/``) holds the entry.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sharpmld.core import fsio
from sharpmld.core.errors import ClaimRefused
from sharpmld.core.faults import crashpoint
from sharpmld.queue.jobid import new_job_id
from sharpmld.queue.layout import INPUT_DIR, Layout
from sharpmld.queue.lease import Owner, write_lease
from sharpmld.queue.record import Job, JobRecord


def claim(layout: Layout, name: str, owner: Owner, *, priority: int = 0) -> Job | None:
    """Claim ``inbox/<name>``; return the job, or None when someone else took it first."""
    source = layout.inbox / name
    try:
        is_dir = source.lstat().st_mode & 0o170000 == 0o040000
    except FileNotFoundError:
        return None
    job_id = new_job_id(name, is_file=not is_dir)
    record = JobRecord(job_id, name, "folder" if is_dir else "file", priority=priority)

    # Named for its owner: until the lease is written inside, the name is the only evidence
    # the orphan sweep has of whether the daemon preparing it still lives.
    staging = fsio.temp_name_for(layout.working / f"{owner.tag()}-{job_id}")
    staging.mkdir()
    job_dir = layout.working / job_id
    try:
        Job(staging, record).save()
        write_lease(staging, owner)
        if not is_dir:
            (staging / INPUT_DIR).mkdir()
        os.rename(staging, job_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    target = job_dir / INPUT_DIR if is_dir else job_dir / INPUT_DIR / name
    crashpoint("claim_prepared")
    try:
        taken = _rename_claim(source, target)
    except OSError as exc:
        # Refused (a folder this user may not rename, say): leave no job folder behind.
        shutil.rmtree(job_dir, ignore_errors=True)
        if isinstance(exc, PermissionError):
            raise ClaimRefused(name=name, error=exc.strerror or str(exc)) from exc
        raise
    if not taken:
        shutil.rmtree(job_dir, ignore_errors=True)
        return None
    crashpoint("claimed")
    fsio.fsync_dir(layout.inbox)
    fsio.fsync_dir(target.parent)
    fsio.fsync_dir(layout.working)
    return Job(job_dir, record)


def _rename_claim(source: Path, target: Path) -> bool:
    """One rename; ENOENT means we lost the race, unless (NFS) our reply was lost instead."""
    try:
        os.rename(source, target)
    except FileNotFoundError:
        return target.exists() or target.is_symlink()
    return True
