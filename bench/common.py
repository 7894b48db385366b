"""What every benchmark shares: the figure record, timing helpers and the machine description."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SUPPORT = REPO / "tests" / "support"  # the tiny model, and the harness bench shares

# SHARP's output for one photo: two layers of 768 × 768 Gaussians.
SHARP_GAUSSIANS = 2 * 768 * 768


@dataclass
class Figure:
    """One measured figure beside its baseline, as printed in the table and results.json.

    ``ratio`` is baseline / value for times (how many times faster) unless the benchmark says
    otherwise in ``ratio_label``; ``passed`` is None when there is no target to meet.
    """

    name: str
    group: str
    title: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    ratio_label: str = "× faster"
    target: str = ""
    passed: bool | None = None
    runs: list[float] = field(default_factory=list)
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation, like numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def timed(fn: Callable[[], Any], repeat: int, *, warmup: int = 0) -> tuple[list[float], Any]:
    """Wall times of ``repeat`` calls after ``warmup`` untimed ones, and the last result."""
    result: Any = None
    for _ in range(warmup):
        result = fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - start)
    return runs, result


def drop_caches() -> bool:
    """Flush dirty pages and drop the page cache (needs root); False if not allowed here."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


def bench_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for subprocesses: the tests' harness environment (the repository and the
    tiny model importable, no SHARPMLD_* settings of the caller), plus ``extra``."""
    from tests.support import harness

    return harness.env(extra)


def run_python(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run ``python ARGS`` with this interpreter; its stdout, or RuntimeError with stderr."""
    proc = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env or bench_env(),
        timeout=timeout,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"python {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM and the versions that matter, for results.json and RESULTS.md."""
    import numpy
    import torch

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if "model name" in line
        ),
        platform.processor() or platform.machine(),
    )
    mem_kb = next(
        (int(line.split()[1]) for line in _read("/proc/meminfo").splitlines() if line.startswith("MemTotal")),
        0,
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / (1 << 20), 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": numpy.__version__,
        "gpu": "none (CPU only)",
    }


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MiB."""
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0: write 5 to clear_refs); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5\n")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def fmt_value(value: float | None, unit: str) -> str:
    """Compact human form: 0.123 s, 45.6 ms, 512 MB, 12.3×."""
    if value is None:
        return "—"
    if unit == "s":
        if value < 0.01:
            return f"{value * 1000:.2f} ms"
        if value < 1:
            return f"{value * 1000:.0f} ms"
        return f"{value:.2f} s"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "×":
        return f"{value:.2f}×"
    return f"{value:.4g} {unit}".strip()


def _busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(x) for x in _read("/proc/stat").splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def background_cores(window: float = 1.0) -> float:
    """CPU cores kept busy by other processes while this one sleeps for ``window`` seconds."""
    busy0, total0 = _busy_jiffies()
    time.sleep(window)
    busy1, total1 = _busy_jiffies()
    cores = os.cpu_count() or 1
    return cores * (busy1 - busy0) / max(total1 - total0, 1)


def wait_for_quiet(max_wait: float, threshold: float = 0.25) -> float:
    """Wait (up to ``max_wait`` s) until other processes use < ``threshold`` cores; returns
    the last measured background load. Other engineers' test runs share this machine, and a
    busy core distorts multi-threaded timings far beyond its share (OpenMP barriers)."""
    deadline = time.monotonic() + max_wait
    load = background_cores(0.5)
    while load >= threshold and time.monotonic() < deadline:
        load = background_cores(1.0)
    return load


def idle_usage(pid: int, window: float) -> tuple[float, float, float, int]:
    """CPU (% of one core), peak resident MB, the seconds measured and the memory samples taken,
    for process ``pid`` left alone for ``window`` seconds (memory sampled every half second)."""
    import psutil

    from sharpmld.core.units import MB

    proc = psutil.Process(pid)
    before = proc.cpu_times()
    t0 = time.monotonic()
    rss: list[float] = []
    while time.monotonic() - t0 < window:
        rss.append(proc.memory_info().rss / MB)
        time.sleep(0.5)
    after = proc.cpu_times()
    elapsed = time.monotonic() - t0
    rss.append(proc.memory_info().rss / MB)
    cpu = 100 * ((after.user - before.user) + (after.system - before.system)) / elapsed
    return cpu, max(rss), elapsed, len(rss)
