"""A process's physical footprint on macOS, read with ``proc_pid_rusage``.

The resident size misses what makes a Mac swap: memory the GPU holds for the process (MPS
tensors live in unified memory) and pages the kernel compressed. The physical footprint counts
both; it is the figure Activity Monitor shows as "Memory" and the one macOS judges a process by
under memory pressure. psutil does not expose it (on macOS its ``memory_full_info()`` gives
rss, vms, pfaults, pageins and uss only), so it is read here through libproc.

The structure follows ``struct rusage_info_v2`` of the macOS SDK's ``<sys/resource.h>``
(``RUSAGE_INFO_V2`` = 2, available since macOS 10.9): a 16-byte uuid, then 18 ``uint64_t``
fields, ``ri_phys_footprint`` the eighth of them (byte offset 72, 160 bytes in all). The call is
``int proc_pid_rusage(int pid, int flavor, rusage_info_t *buffer)`` from ``<libproc.h>``,
0 on success. Not run on a Mac here: the tests drive it through a stand-in library that
fills the buffer as that header lays it out.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

RUSAGE_INFO_V2 = 2
LIBSYSTEM = "/usr/lib/libSystem.B.dylib"

_U64_FIELDS = (
    "ri_user_time",
    "ri_system_time",
    "ri_pkg_idle_wkups",
    "ri_interrupt_wkups",
    "ri_pageins",
    "ri_wired_size",
    "ri_resident_size",
    "ri_phys_footprint",
    "ri_proc_start_abstime",
    "ri_proc_exit_abstime",
    "ri_child_user_time",
    "ri_child_system_time",
    "ri_child_pkg_idle_wkups",
    "ri_child_interrupt_wkups",
    "ri_child_pageins",
    "ri_child_elapsed_abstime",
    "ri_diskio_bytesread",
    "ri_diskio_byteswritten",
)


class RusageInfoV2(ctypes.Structure):
    """``struct rusage_info_v2`` of ``<sys/resource.h>``."""

    _fields_ = [("ri_uuid", ctypes.c_uint8 * 16), *((name, ctypes.c_uint64) for name in _U64_FIELDS)]


class FootprintReader:
    """``phys_footprint`` of a pid, or None where it cannot be read (not macOS, no such
    process, not allowed): the caller then falls back to the resident size."""

    def __init__(self, lib: Any = None, platform: str = sys.platform) -> None:
        self._lib = lib
        self._tried = lib is not None or platform != "darwin"

    def _proc_pid_rusage(self) -> Any:
        if not self._tried:
            self._tried = True
            try:
                lib = ctypes.CDLL(LIBSYSTEM, use_errno=True)
                fn = lib.proc_pid_rusage
            except (OSError, AttributeError):
                return None
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(RusageInfoV2)]
            fn.restype = ctypes.c_int
            self._lib = lib
        return None if self._lib is None else self._lib.proc_pid_rusage

    def __call__(self, pid: int) -> int | None:
        fn = self._proc_pid_rusage()
        if fn is None:
            return None
        info = RusageInfoV2()
        if fn(pid, RUSAGE_INFO_V2, ctypes.pointer(info)) != 0:
            return None
        return int(info.ri_phys_footprint)
