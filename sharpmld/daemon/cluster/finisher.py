"""Closing a published job once every photo is settled: committed, or given up by the broker.

Each photo's winning attempt (the one its ``COMMIT`` in the job's workspace names) is
gathered into the job's folder at the very places a single-host job has them
(``<stem>.ply``, ``images/<stem>.png`` ...): the attempt folder is laid out like a job
folder, so its files move over by their relative paths, each with one rename on the shared
volume. Gathering again after a crash is harmless: what already moved is no longer in the
attempt. The photo's entry in result.json is the worker's own account in the attempt's
``RESULT.json`` (outputs named relative to the attempt), or, without one, made from the
files; it says which host made the photo (the worker's ``made_by``, else the attempt's name,
which starts with the host id) and in which attempt. A worker that failed on the photo
commits ``FAILED.json`` ({code, message}) instead.

The job then ends as a single-host job does (``JobRun.complete``/``fail``): result.json and
the one rename into ``done/`` or ``failed/``. The workspace and the ledger are removed after
that rename, so a crash before it leaves everything needed to finish again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sharpmld.cluster import commit
from sharpmld.core import fsio
from sharpmld.core.errors import EngineCrash, PhotoGivenUp, format_advice
from sharpmld.daemon.cluster.ledger import PUBLISHED_FILE, Ledger, Photo
from sharpmld.daemon.cluster.publisher import CLUSTER_DIR, workspace
from sharpmld.daemon.jobrun import JobRun
from sharpmld.queue.layout import (
    ERROR_JSON,
    ERROR_TXT,
    INPUT_DIR,
    JOB_FILE,
    JOB_LOG,
    LEASE_FILE,
    PROGRESS_FILE,
    RESULT_FILE,
)

RESULT_ENTRY = "RESULT.json"  # in an attempt: the worker's result.json entry for the photo
FAILED_FILE = "FAILED.json"  # in an attempt: the photo failed, {code, message}
# Names in a job's folder that are sharpmld's: an attempt's file never replaces one.
RESERVED = {
    INPUT_DIR,
    JOB_FILE,
    LEASE_FILE,
    PROGRESS_FILE,
    RESULT_FILE,
    ERROR_TXT,
    ERROR_JSON,
    JOB_LOG,
    PUBLISHED_FILE,
    CLUSTER_DIR,
}


@dataclass
class Settled:
    """What the finisher found for one job: photos made, photos failed, losers swept."""

    images: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    swept: int = 0  # attempt folders of losers removed (commit conflicts)
    redeliveries: int = 0  # deliveries beyond the first, as the attempts' names count them


def outstanding(job_dir: Path, ledger: Ledger) -> list[str]:
    """The photos neither committed nor given up yet."""
    space = workspace(job_dir)
    try:
        committed = set(os.listdir(space / commit.COMMITS_DIR))
    except FileNotFoundError:
        committed = set()
    return [
        key
        for key in ledger.photos
        if key not in ledger.given_up and commit.commit_marker(space, key).name not in committed
    ]


def host_of(attempt: str) -> str:
    """The host id an attempt's name starts with (``<host id>.<pid>.<delivery>``)."""
    return attempt.split(".", 1)[0]


def delivery_of(attempt: str) -> int:
    """Which delivery of the photo the attempt was (1 when its name does not say)."""
    tail = attempt.rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() and int(tail) > 0 else 1


def settle(job_dir: Path, ledger: Ledger) -> Settled:
    """Gather every photo's committed outputs into ``job_dir``; list the failed ones."""
    out = Settled()
    space = workspace(job_dir)
    for key, photo in ledger.photos.items():
        out.swept += len(commit.sweep_losers(space, key))
        if key in ledger.given_up:
            deliveries = ledger.given_up[key]
            out.redeliveries += max(deliveries - 1, 0)
            out.failed.append(
                {
                    "source": photo.rel,
                    "code": PhotoGivenUp.code,
                    "message": format_advice(PhotoGivenUp, deliveries=deliveries),
                    "deliveries": deliveries,
                }
            )
            continue
        attempt = commit.committed(space, key)
        winner = commit.winning_folder(space, key)
        if attempt is None or winner is None:
            continue  # not settled: the caller asks only once every photo is
        out.redeliveries += delivery_of(attempt) - 1
        made_by = _made_by(winner)
        who = {
            "host": str(made_by.get("host_id") or host_of(attempt)),
            "host_name": str(made_by.get("host") or ""),
            "device": str(made_by.get("device") or ""),
            "attempt": attempt,
        }
        failure = _read_json(winner / FAILED_FILE)
        if failure is not None:
            out.failed.append(
                {
                    "source": photo.rel,
                    "code": str(failure.get("code") or "internal_error"),
                    "message": str(failure.get("message") or "the worker failed on this photo"),
                    **who,
                }
            )
            continue
        entry = _read_json(winner / RESULT_ENTRY)
        moved = _gather(winner, job_dir)
        if entry is not None:
            entry = {k: v for k, v in entry.items() if k not in ("source", "made_by")}
        else:
            outputs = {_output_name(rel, photo): {"path": rel, "bytes": size} for rel, size in moved}
            entry = {"outputs": outputs}
        out.images.append({"source": photo.rel, **entry, **who})
    return out


def close(run: JobRun, settled: Settled) -> str:
    """End the job as a single-host job ends; returns the outcome (done or failed)."""
    run.images = settled.images
    run.rejected = [*run.rejected, *settled.failed]
    # The intake ran no model: the engine is the workers', as their attempts name them.
    made = [*settled.images, *settled.failed]
    devices = sorted({str(i["device"]) for i in made if i.get("device")})
    hosts = sorted({str(i.get("host_name") or i.get("host")) for i in made if i.get("host")})
    run.engine = {**run.engine, "device": ",".join(devices), "hosts": hosts}
    if settled.images or not settled.failed:
        return run.complete()
    first = settled.failed[0]
    run.fail(EngineCrash(f"{EngineCrash.advice} ({first['source']}: {first['message']})"))
    return run.outcome


def tidy(job_dir: Path) -> None:
    """After the final rename: remove what only the cluster needed (best effort)."""
    shutil.rmtree(workspace(job_dir), ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(job_dir / PUBLISHED_FILE)
    fsio.fsync_dir(job_dir)


def _gather(attempt: Path, job_dir: Path) -> list[tuple[str, int]]:
    """Move the attempt's regular files to the same relative paths in the job; (path, bytes)."""
    moved: list[tuple[str, int]] = []
    for dirpath, dirs, files in os.walk(attempt):  # does not follow links
        dirs.sort()
        for name in sorted(files):
            source = Path(dirpath) / name
            rel = source.relative_to(attempt).as_posix()
            if rel in (RESULT_ENTRY, FAILED_FILE) or rel.split("/", 1)[0] in RESERVED:
                continue
            if not source.is_file() or source.is_symlink():
                continue
            target = job_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            size = source.stat().st_size
            os.replace(source, target)
            fsio.fsync_dir(target.parent)
            moved.append((rel, size))
    return moved


def _output_name(rel: str, photo: Photo) -> str:
    """An output's key in result.json when the worker left no entry: its kind by suffix."""
    name = rel.rsplit("/", 1)[-1]
    if rel.startswith("images/"):
        return "image"
    if name.startswith(photo.stem):
        return name[len(photo.stem) :].lstrip(".-_") or name
    return name


def _made_by(attempt: Path) -> dict[str, Any]:
    """Who made the attempt, as its worker wrote in RESULT.json or FAILED.json."""
    for name in (RESULT_ENTRY, FAILED_FILE):
        made_by = (_read_json(attempt / name) or {}).get("made_by")
        if isinstance(made_by, dict):
            return made_by
    return {}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
