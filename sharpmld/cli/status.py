"""``sharpmld status``: what is waiting, running and finished, read straight from the tree."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from sharpmld.core.config import Config
from sharpmld.intake.names import is_in_progress, is_junk
from sharpmld.queue.jobid import is_job_id
from sharpmld.queue.layout import PROGRESS_FILE, STATES, Layout


def _count(layout: Layout, state: str) -> int:
    try:
        names = os.listdir(layout.state(state))
    except FileNotFoundError:
        return 0
    if state == "inbox":
        return sum(1 for n in names if not is_junk(n) and not is_in_progress(n))
    return sum(1 for n in names if is_job_id(n))


def _read_json(path: Any) -> dict[str, Any] | None:
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def gather(config: Config) -> dict[str, Any]:
    """Counts per state, the jobs in flight with their progress, and the live daemons."""
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
            if name.startswith("daemon-") and name.endswith(".json"):
                info = _read_json(layout.state_dir / name)
                if info and _alive(info):
                    daemons.append(info)
    return {"root": str(config.root), "counts": counts, "in_flight": in_flight, "daemons": daemons}


def _alive(info: dict[str, Any]) -> bool:
    if info.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(info.get("pid", 0)), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


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
    if not info["daemons"]:
        lines.append("no daemon is running on this root (start one with `sharpmld run`)")
    for d in info["daemons"]:
        engine = d.get("engine")
        extra = f" ({d['engine_message']})" if d.get("engine_message") else ""
        device = f" on {d['device']}" if d.get("device") else ""
        lines.append(f"daemon pid {d['pid']}@{d['host']}: engine {engine}{device}{extra}")
    return "\n".join(lines)
