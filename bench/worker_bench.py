"""Target 5: how fast a worker with a large model is ready, and how much memory it takes.

Each load runs in a fresh process (``python -m bench.large_model measure``) so resident-memory
peaks (VmHWM) belong to that load alone. "Cold" drops the page cache first (as root); "warm"
reads the checkpoint once beforehand. ``ready`` is the time from just before building the
model to a model ready to run; the interpreter and ``import torch`` are reported apart, and the
full worker start (``python -m sharpmld.worker.main`` until its "ready" event) too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, Figure, bench_env, drop_caches, median, run_python
from bench.large_model import MB_ENV, WIDTH_ENV, write_checkpoint
from sharpmld.core.units import MB
from sharpmld.protocol import EVENT_FD_ENV

TARGET_READY_SECONDS = 1.5
TARGET_RSS_RATIO = 1.2


def _warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def _write_checkpoint(path: Path, size_mb: float, width: int) -> None:
    saved = {k: os.environ.get(k) for k in (MB_ENV, WIDTH_ENV)}
    os.environ[MB_ENV], os.environ[WIDTH_ENV] = str(size_mb), str(width)
    try:
        write_checkpoint(path)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _measure(method: str, checkpoint: Path, env: dict[str, str], cold: bool) -> dict[str, Any]:
    if cold:
        drop_caches()
    else:
        _warm(checkpoint)
    args = ["-m", "bench.large_model", "measure", "--method", method, "--checkpoint", str(checkpoint)]
    out: dict[str, Any] = json.loads(run_python([*args, "--forward"], env=env).strip().splitlines()[-1])
    return out


def worker_start(checkpoint: Path, env: dict[str, str], cold: bool) -> dict[str, Any]:
    """Spawn the real worker; wall time until its "ready" event, and its peak RSS then."""
    if cold:
        drop_caches()
    else:
        _warm(checkpoint)
    read_fd, write_fd = os.pipe()
    settings = {
        "factory": "bench.large_model:create",
        "checkpoint": str(checkpoint),
        "device": "cpu",
        "daemon_pid": os.getpid(),
        "limits": {},
    }
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sharpmld.worker.main", json.dumps(settings)],
        stdin=subprocess.PIPE,
        pass_fds=(write_fd,),
        env={**env, EVENT_FD_ENV: str(write_fd)},
        cwd=REPO,
    )
    os.close(write_fd)
    event: dict[str, Any] = {}
    buf = b""
    try:
        with os.fdopen(read_fd, "rb", buffering=0) as events:
            while not event:
                chunk = events.read(1 << 16)
                if not chunk:
                    raise RuntimeError("the worker exited before it was ready")
                buf += chunk
                for line in buf.split(b"\n")[:-1]:
                    message = json.loads(line)
                    if message.get("ev") in ("ready", "unavailable"):
                        event = message
                        break
            wall = time.perf_counter() - start
            status = Path(f"/proc/{proc.pid}/status").read_text()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # the worker exits when its command pipe closes
        proc.wait(timeout=60)
    if event.get("ev") != "ready":
        raise RuntimeError(f"worker not ready: {event}")
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return {"wall_s": wall, "peak_rss_mb": hwm / 1024, **event}


def run(quick: bool) -> list[Figure]:
    size_mb, width, reps = (48, 1024, 1) if quick else (600, 4096, 3)
    env = bench_env({MB_ENV: str(size_mb), WIDTH_ENV: str(width)})
    can_drop = False if quick else drop_caches()
    modes = ["warm", "cold"] if can_drop else ["warm"]
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        checkpoint = Path(tmp) / "large.pt"
        _write_checkpoint(checkpoint, size_mb, width)
        ckpt_mb = checkpoint.stat().st_size / MB
        loads: dict[str, list[dict[str, Any]]] = {}
        for mode in modes:
            for method in ("conventional", "ours"):
                key = f"{method}_{mode}"
                loads[key] = [_measure(method, checkpoint, env, mode == "cold") for _ in range(reps)]
        starts = {
            mode: [worker_start(checkpoint, env, mode == "cold") for _ in range(reps)] for mode in modes
        }

    def med(key: str, field: str) -> float:
        return median([float(r[field]) for r in loads[key]])

    def summary(key: str) -> dict[str, float]:
        fields = ("import_s", "ready_s", "forward_s", "peak_rss_ready_mb", "peak_rss_forward_mb")
        return {f: round(med(key, f), 3) for f in fields} | {
            "rss_after_import_mb": med(key, "rss_after_import_mb")
        }

    methods = {r["method"] for r in loads["ours_warm"]}
    ours, conv = summary("ours_warm"), summary("conventional_warm")
    figures = [
        Figure(
            name="worker_ready_warm",
            group="worker",
            title=f"model ready, {ckpt_mb:.0f} MB checkpoint, warm page cache",
            value=ours["ready_s"],
            unit="s",
            baseline=conv["ready_s"],
            baseline_label="random init + torch.load + load_state_dict",
            ratio=conv["ready_s"] / ours["ready_s"],
            target=f"≤ {TARGET_READY_SECONDS} s",
            passed=ours["ready_s"] <= TARGET_READY_SECONDS and methods == {"meta+mmap+assign"},
            runs=[r["ready_s"] for r in loads["ours_warm"]],
            notes=(
                f"load method {', '.join(sorted(methods))}; first forward after ready: ours "
                f"{ours['forward_s']:.2f} s, conventional {conv['forward_s']:.2f} s"
            ),
            extra={"checkpoint_mb": ckpt_mb, "ours": ours, "conventional": conv},
        ),
        Figure(
            name="worker_peak_rss",
            group="worker",
            title=f"worker peak RSS when ready (VmHWM), {ckpt_mb:.0f} MB checkpoint",
            value=ours["peak_rss_ready_mb"],
            unit="MB",
            baseline=conv["peak_rss_ready_mb"],
            baseline_label="conventional load, same process layout",
            ratio=ours["peak_rss_ready_mb"] / ckpt_mb,
            ratio_label="× checkpoint",
            target=f"≤ {TARGET_RSS_RATIO} × checkpoint = {TARGET_RSS_RATIO * ckpt_mb:.0f} MB",
            passed=ours["peak_rss_ready_mb"] <= TARGET_RSS_RATIO * ckpt_mb,
            runs=[r["peak_rss_ready_mb"] for r in loads["ours_warm"]],
            notes=(
                f"conventional {conv['peak_rss_ready_mb'] / ckpt_mb:.2f}× checkpoint; "
                f"python + torch alone {ours['rss_after_import_mb']:.0f} MB; after the first forward "
                f"(every weight page touched) ours {ours['peak_rss_forward_mb']:.0f} MB, "
                f"conventional {conv['peak_rss_forward_mb']:.0f} MB"
            ),
            extra={"checkpoint_mb": ckpt_mb},
        ),
    ]
    if "cold" in modes:
        ours_c, conv_c = summary("ours_cold"), summary("conventional_cold")
        figures.append(
            Figure(
                name="worker_ready_cold",
                group="worker",
                title=f"model ready, {ckpt_mb:.0f} MB checkpoint, page cache dropped",
                value=ours_c["ready_s"],
                unit="s",
                baseline=conv_c["ready_s"],
                baseline_label="random init + torch.load + load_state_dict",
                ratio=conv_c["ready_s"] / ours_c["ready_s"],
                target="(no target; warm is the target)",
                runs=[r["ready_s"] for r in loads["ours_cold"]],
                notes=(
                    f"mmap defers reading the weights to their first use: first forward ours "
                    f"{ours_c['forward_s']:.2f} s vs conventional {conv_c['forward_s']:.2f} s; "
                    f"ready + first forward ours {ours_c['ready_s'] + ours_c['forward_s']:.2f} s vs "
                    f"{conv_c['ready_s'] + conv_c['forward_s']:.2f} s"
                ),
                extra={"ours": ours_c, "conventional": conv_c},
            )
        )
    else:
        figures.append(
            Figure(
                name="worker_ready_cold",
                group="worker",
                title="model ready, page cache dropped",
                value=float("nan"),
                unit="s",
                target="(not measured)",
                notes="quick mode, or dropping the page cache is not permitted here",
            )
        )
    warm_starts = starts["warm"]
    start_wall = median([s["wall_s"] for s in warm_starts])
    import_s = ours["import_s"]
    figures.append(
        Figure(
            name="worker_start_full",
            group="worker",
            title="full worker start: python -m sharpmld.worker.main → ready event (warm)",
            value=start_wall,
            unit="s",
            baseline=import_s + conv["ready_s"],
            baseline_label="import torch + conventional load (measured in-process)",
            ratio=(import_s + conv["ready_s"]) / start_wall,
            target="(reported separately; no target)",
            runs=[s["wall_s"] for s in warm_starts],
            notes=(
                f"of which load {median([s['load_seconds'] for s in warm_starts]):.2f} s; import torch "
                f"≈ {import_s:.2f} s; peak RSS {median([s['peak_rss_mb'] for s in warm_starts]):.0f} MB"
                + (
                    f"; cold {median([s['wall_s'] for s in starts['cold']]):.2f} s"
                    if "cold" in starts
                    else ""
                )
            ),
            extra={"starts": starts},
        )
    )
    return figures
