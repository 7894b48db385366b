"""The daemon's own ``process_*`` metrics, on every platform.

prometheus_client's ``ProcessCollector`` reads ``/proc`` and quietly exposes nothing where
there is none (macOS), though the README promises these series. Where ``/proc`` is missing,
:class:`PsutilProcessCollector` exposes the same names, types and units from psutil, so the
dashboard and any rule written against a Linux daemon read a Mac daemon the same way.

What the psutil figures mean on macOS follows psutil's documentation (``memory_info``: rss and
vms from the Mach task info; ``cpu_times``; ``num_fds``; ``create_time``) and ``getrlimit(2)``
for the descriptor limit. Nothing here was run on a Mac: the tests choose this collector on
Linux with ``proc_available=False``.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class PsutilProcessCollector(Collector):
    """The names and help texts of prometheus_client's ``ProcessCollector``, read from psutil."""

    def __init__(self, pid: int | None = None) -> None:
        import psutil  # here, not at import time: ``sharpmld --help`` need not load it

        self._process = psutil.Process(pid)

    def collect(self) -> Iterable[Metric]:
        import psutil

        try:
            with self._process.oneshot():
                memory = self._process.memory_info()
                cpu = self._process.cpu_times()
                started = self._process.create_time()
                fds = self._process.num_fds()
        except psutil.Error:
            return []  # as ProcessCollector does when /proc/<pid> cannot be read
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return [
            GaugeMetricFamily(
                "process_virtual_memory_bytes", "Virtual memory size in bytes.", value=float(memory.vms)
            ),
            GaugeMetricFamily(
                "process_resident_memory_bytes", "Resident memory size in bytes.", value=float(memory.rss)
            ),
            GaugeMetricFamily(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                value=started,
            ),
            CounterMetricFamily(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                value=cpu.user + cpu.system,
            ),
            GaugeMetricFamily("process_open_fds", "Number of open file descriptors.", value=float(fds)),
            # ProcessCollector reports the soft limit ("Max open files" in /proc/<pid>/limits).
            GaugeMetricFamily(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                value=float("inf") if soft == resource.RLIM_INFINITY else float(soft),
            ),
        ]


def proc_readable(proc: str = "/proc") -> bool:
    """Whether ``ProcessCollector`` can work here: it needs ``/proc/stat`` and ``/proc/self``."""
    return os.path.isfile(os.path.join(proc, "stat")) and os.path.isdir(os.path.join(proc, "self"))


def register_process_collector(registry: CollectorRegistry, *, proc_available: bool | None = None) -> str:
    """Register the collector that works on this platform; returns which one, for the tests.

    ``proc_available`` overrides the check, so a test on Linux can choose as macOS would.
    """
    if proc_readable() if proc_available is None else proc_available:
        ProcessCollector(registry=registry)
        return "proc"
    registry.register(PsutilProcessCollector())
    return "psutil"
