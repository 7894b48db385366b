"""What ``sharpmld serve`` costs: idle CPU and memory, and the queue for 10,000 finished jobs.

The web app runs beside the daemon on the same Mac, so it must cost next to nothing while
nobody looks (< 1 % of a core, < 80 MB, the daemon's own idle targets) and answer the queue
page quickly even when ``done/`` has grown large (< 0.5 s for 10,000 jobs). One real
``sharpmld serve`` process on a root of finished jobs; requests come from this process over
loopback, so the figures include HTTP but not a browser's rendering.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.common import Figure, idle_usage, median, percentile, timed
from bench.fixtures import done_root

IDLE_CPU_PERCENT = 1.0
IDLE_RSS_MB = 80.0
QUEUE_SECONDS = 0.5
FINISHED_JOBS = 10_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as answer:
        body: bytes = answer.read()
        return body


def _serve(root: Path, port: int) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "sharpmld", "serve", "--root", str(root), "--port", str(port)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until it answers, not for a fixed time
        if proc.poll() is not None:
            raise RuntimeError(f"sharpmld serve exited with {proc.returncode} at start")
        try:
            _get(f"http://127.0.0.1:{port}/api/status")
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("sharpmld serve did not answer within 60 s")


def run(quick: bool) -> list[Figure]:
    count = 1_000 if quick else FINISHED_JOBS
    window = 2.0 if quick else 30.0
    repeat = 3 if quick else 10
    root = done_root(count)
    port = _free_port()
    proc = _serve(root, port)
    base = f"http://127.0.0.1:{port}"
    try:
        # The queue first (page and API), then idle: an idle server that has served a big
        # page once is what a person leaves running.
        page_times, page = timed(lambda: _get(f"{base}/"), repeat, warmup=1)
        api_times, api = timed(lambda: _get(f"{base}/api/jobs"), repeat, warmup=1)
        time.sleep(1.0)
        cpu, peak, elapsed, samples = idle_usage(proc.pid, window)
    finally:
        proc.terminate()
        proc.wait(30)
    return [
        Figure(
            name="serve_queue_page",
            group="web",
            title=f"queue page GET / with {count:,} jobs in done/ "
            f"(median of {repeat}, {len(page) / 1e6:.1f} MB)",
            value=median(page_times),
            unit="s",
            baseline=QUEUE_SECONDS,
            baseline_label="the target",
            ratio=None,
            ratio_label="",
            target=f"< {QUEUE_SECONDS:g} s",
            passed=median(page_times) < QUEUE_SECONDS,
            runs=page_times,
            notes=f"p95 {percentile(page_times, 0.95):.3f} s; GET /api/jobs median "
            f"{median(api_times):.3f} s ({len(api) / 1e6:.1f} MB)",
            extra={"jobs": count, "api_median_s": median(api_times), "api_runs": api_times},
        ),
        Figure(
            name="serve_idle_cpu",
            group="web",
            title=f"idle sharpmld serve CPU, {count:,} jobs in done/, {elapsed:.0f} s window",
            value=cpu,
            unit="%",
            baseline=IDLE_CPU_PERCENT,
            baseline_label="the target",
            ratio=None,
            ratio_label="",
            target=f"< {IDLE_CPU_PERCENT:g} % of one core",
            passed=cpu < IDLE_CPU_PERCENT,
            extra={"jobs": count, "window_s": elapsed},
        ),
        Figure(
            name="serve_idle_rss",
            group="web",
            title=f"idle sharpmld serve RSS (max over the window, after serving the queue), {count:,} jobs",
            value=peak,
            unit="MB",
            baseline=IDLE_RSS_MB,
            baseline_label="the target",
            ratio=None,
            ratio_label="",
            target=f"< {IDLE_RSS_MB:g} MB",
            passed=peak < IDLE_RSS_MB,
            extra={"samples": samples},
        ),
    ]
