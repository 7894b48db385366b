"""``sharpmld status``: what is waiting, running and finished, read straight from the tree.

Its exit code answers a script's question without parsing: is a daemon running on this root,
did a job fail since a given time, and with ``--check`` is the daemon healthy (running, its
engine loaded, claiming jobs). The codes are named in ``cli/codes.py`` and listed by
``sharpmld status --help`` (``STATUS_EXIT_CODES``). A daemon counts as running only if its status file names a
process that runs now with the same start time: the lease's rule, so a pid the system gave
to another process after a crash is not mistaken for the daemon.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sharpmld.cli.codes import RET_ENGINE_UNAVAILABLE, RET_JOBS_FAILED, RET_NO_DAEMON, RET_OK, RET_PAUSED
from sharpmld.core.config import Config
from sharpmld.intake.names import is_in_progress, is_junk
from sharpmld.queue.cluster_workers import read_workers
from sharpmld.queue.jobid import is_job_id
from sharpmld.queue.layout import DAEMON_STATUS_PREFIX, PROGRESS_FILE, RESULT_FILE, STATES, Layout
from sharpmld.queue.lease import Owner
from sharpmld.supervisor.supervisor import UNAVAILABLE

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A time from ``2026-05-01T09:00:00Z`` (no zone: local time) or a span ago (``90m``, ``2h``)."""
    current = now or datetime.now(UTC)
    match = _AGO.match(text.strip())
    if match:
        return current - timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--failed-since {text!r}: give a time like 2026-05-01T09:00:00Z or a span ago like 30m, 2h, 1d"
        ) from None
    return when.astimezone(UTC) if when.tzinfo is None else when


def _count(layout: Layout, state: str) -> int:
    try:
        names = os.listdir(layout.state(state))
    except FileNotFoundError:
        return 0
    if state == "inbox":
        return sum(1 for n in names if not is_junk(n) and not is_in_progress(n))
    return sum(1 for n in names if is_job_id(n))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_running(info: dict[str, Any]) -> bool:
    """Whether a daemon status file names a live process: on this host, by pid and start time.

    Another host's processes cannot be seen from here, so a daemon there counts as running.
    """
    try:
        owner = Owner(str(info["host"]), int(info["pid"]), float(info.get("started", 0.0)))
    except (KeyError, TypeError, ValueError):
        return False
    return owner.host != socket.gethostname() or owner.is_alive()


def _failed_at(job_dir: Path) -> datetime:
    """When a failed job finished: result.json's ``finished_at``, else the folder's mtime."""
    result = _read_json(job_dir / RESULT_FILE) or {}
    try:
        return datetime.fromisoformat(str(result["finished_at"]))
    except (KeyError, ValueError):
        return datetime.fromtimestamp(job_dir.stat().st_mtime, UTC)


def failed_since(layout: Layout, since: datetime) -> list[str]:
    """The ids of the jobs in ``failed/`` that failed at or after ``since``, sorted."""
    try:
        names = sorted(n for n in os.listdir(layout.failed) if is_job_id(n))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        try:
            if _failed_at(layout.failed / name) >= since:
                found.append(name)
        except OSError:
            continue  # removed (retried, swept) while we looked
    return found


def gather(config: Config, since: datetime | None = None) -> dict[str, Any]:
    """Counts per state, the jobs in flight with their progress, the live daemons, new failures."""
    layout = Layout(config.root)
    counts = {state: _count(layout, state) for state in STATES}
    in_flight = []
    if layout.working.is_dir():
        for name in sorted(os.listdir(layout.working)):
            if is_job_id(name):
                progress = _read_json(layout.working / name / PROGRESS_FILE) or {"job_id": name}
                in_flight.append(progress)
    daemons = []
    if layout.state_dir.is_dir():
        for name in sorted(os.listdir(layout.state_dir)):
            if name.startswith(DAEMON_STATUS_PREFIX) and name.endswith(".json"):
                daemon = _read_json(layout.state_dir / name)
                if daemon and is_running(daemon):
                    daemons.append(daemon)
    # Every daemon on a root scans the same inbox: the freshest one's view is the answer.
    freshest = max(daemons, key=lambda d: float(d.get("updated") or 0.0), default={})
    info: dict[str, Any] = {
        "root": str(config.root),
        "counts": counts,
        "in_flight": in_flight,
        "daemons": daemons,
        "held_back": list(freshest.get("held_back") or []),
        "held_back_total": int(freshest.get("held_back_total") or 0),
    }
    workers = read_workers(layout.state_dir)  # a worker killed outright leaves its file: shown, not judged
    if workers:
        info["workers"] = workers
    if since is not None:
        info["failed_since"] = {"since": since.isoformat(), "jobs": failed_since(layout, since)}
    return info


def _daemon_problem(d: dict[str, Any]) -> tuple[int, str]:
    """(exit code, the one line) for one running daemon."""
    who = f"daemon pid {d.get('pid')}@{d.get('host')}"
    if d.get("engine") == UNAVAILABLE:
        why = d.get("engine_message") or "see its log, or run `sharpmld doctor`"
        return RET_ENGINE_UNAVAILABLE, f"engine unavailable: {who}: {why}"
    if d.get("paused"):
        why = (d.get("cluster") or {}).get("reason") or ""
        return RET_PAUSED, f"paused: {d['paused']}: {who} claims no jobs" + (f" ({why})" if why else "")
    return RET_OK, f"ok: {who}, engine {d.get('engine')}"


def exit_code(info: dict[str, Any], *, check: bool = False) -> tuple[int, str]:
    """The exit code for ``info`` and the one line that says why (the first that applies)."""
    if not info["daemons"]:
        return RET_NO_DAEMON, f"not running: no daemon is running on {info['root']}"
    if check:
        verdicts = [_daemon_problem(d) for d in info["daemons"]]
        healthy = [v for v in verdicts if v[0] == RET_OK]
        if not healthy:
            return verdicts[0]
        answer = healthy[0]
    else:
        answer = (RET_OK, "ok")
    failed = info.get("failed_since")
    if failed and failed["jobs"]:
        return RET_JOBS_FAILED, f"failed: {len(failed['jobs'])} job(s) since {failed['since']}"
    return answer


def _held_lines(info: dict[str, Any]) -> list[str]:
    """The inbox entries a daemon holds back, each with its reason and, if known, its time."""
    held = info.get("held_back") or []
    if not held:
        return []
    lines = ["held back in the inbox:"]
    now = time.time()
    for h in held:
        until = h.get("until")
        when = ""
        if isinstance(until, int | float):
            left = until - now
            when = f"; in about {math.ceil(left)} s" if left > 0 else "; due now"
        lines.append(f"  {h.get('name')}: {h.get('message') or h.get('reason')}{when}")
    more = int(info.get("held_back_total") or 0) - len(held)
    if more > 0:
        lines.append(f"  ... and {more} more")
    return lines


def format_status(info: dict[str, Any]) -> str:
    """The human-readable form."""
    c = info["counts"]
    lines = [
        f"root: {info['root']}",
        f"inbox {c['inbox']}  working {c['working']}  done {c['done']}  failed {c['failed']}",
    ]
    for job in info["in_flight"]:
        total = job.get("images_total") or "?"
        current = f", now {job['current']}" if job.get("current") else ""
        lines.append(f"  running {job['job_id']}: {job.get('images_done', 0)}/{total} images{current}")
    lines.extend(_held_lines(info))
    if not info["daemons"]:
        lines.append("no daemon is running on this root (start one with `sharpmld run`)")
    for d in info["daemons"]:
        engine = d.get("engine")
        extra = f" ({d['engine_message']})" if d.get("engine_message") else ""
        device = f" on {d['device']}" if d.get("device") else ""
        paused = f", paused: {d['paused']}" if d.get("paused") else ""
        lines.append(f"daemon pid {d['pid']}@{d['host']}: engine {engine}{device}{extra}{paused}")
        if d.get("cluster"):
            lines.append(_cluster_line(d["cluster"]))
    lines.extend(_worker_lines(info.get("workers") or []))
    failed = info.get("failed_since")
    if failed is not None:
        jobs = failed["jobs"]
        lines.append(f"failed since {failed['since']}: {len(jobs)}" + "".join(f"\n  {j}" for j in jobs))
    return "\n".join(lines)


def _worker_lines(workers: list[dict[str, Any]]) -> list[str]:
    """One line per cluster worker: where, on what, warm or not, what it holds now."""
    if not workers:
        return []
    now = time.time()
    lines = ["workers:"]
    for w in workers:
        warm = "warm" if w.get("model_warm") else f"not warm ({w.get('model') or '?'})"
        current = w.get("current_photo")
        if isinstance(current, dict):
            doing = f"on {current.get('job')}/{current.get('photo')} (delivery {current.get('delivered')})"
        else:
            doing = "idle"
        beat = w.get("last_heartbeat")
        heard = f", last heartbeat {max(0, round(now - float(beat)))} s ago" if beat else ""
        updated = w.get("updated")
        written = f", written {max(0, round(now - float(updated)))} s ago" if updated else ""
        metrics = f", metrics :{w['metrics_port']}" if w.get("metrics_port") else ""
        lines.append(
            f"  {w.get('host')} pid {w.get('pid')}: {w.get('device') or 'no device yet'}, model {warm}, "
            f"{doing}{heard}{written}{metrics}"
        )
    return lines


def _cluster_line(c: dict[str, Any]) -> str:
    """The cluster intake's broker: reachable or why not, and what it holds for the workers."""
    jobs = f"{c.get('jobs', 0)} job(s) out with the workers"
    if c.get("unpublished"):
        jobs += f", {c['unpublished']} not yet published"
    if not c.get("connected"):
        return f"  broker {c.get('url')}: NOT CONNECTED: {c.get('reason')}; {jobs}"
    return (
        f"  broker {c.get('url')}: connected; {c.get('pending', 0)} photo(s) waiting, "
        f"{c.get('ack_pending', 0)} held by workers, {c.get('redelivered', 0)} redelivered; {jobs}"
    )
