"""Limits the worker puts on itself before it runs anything else.

Set first thing in the child, so even the model's own import and load run under them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import sys
from typing import Any

from sharpmld.core.units import MB

_RLIMITS = {
    "cpu_seconds": resource.RLIMIT_CPU,
    "open_files": resource.RLIMIT_NOFILE,
    "file_size_mb": resource.RLIMIT_FSIZE,
    "address_space_mb": resource.RLIMIT_AS,
}
_MB = {"file_size_mb", "address_space_mb"}


def apply(settings: dict[str, Any]) -> None:
    """Apply the configured rlimits (0 or absent means unlimited) and forbid core dumps.

    SIGXFSZ is ignored so that a write past the file-size limit fails with EFBIG, which the
    pipeline reports for that image, instead of killing the worker without a word.
    """
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for key, which in _RLIMITS.items():
        value = int(settings.get(key) or 0)
        if value <= 0:
            continue
        soft = value * MB if key in _MB else value
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (soft, hard))


def die_with_parent(daemon_pid: int) -> None:
    """On Linux, ask the kernel to kill us when the daemon dies; exit if it already has."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if daemon_pid:
        try:
            os.kill(daemon_pid, 0)
        except ProcessLookupError:
            os._exit(5)
        except PermissionError:
            pass


def cap_mps_memory(limit_mb: float, mps: Any = None) -> float:
    """On Apple GPUs, make the MPS allocator refuse to grow past the worker's memory cap.

    ``limit_mb`` is the cap the daemon resolved (``"auto"`` already turned into MB; 0: none).
    PyTorch's ``torch.mps.set_per_process_memory_fraction`` takes a share of Metal's
    ``recommendedMaxWorkingSetSize`` (``torch.mps.recommended_max_memory()``), from 0 to 2,
    so the cap is divided by it. Returns the bytes the allocator may now hold (0: not capped).
    """
    try:
        if mps is None:
            import torch

            mps = torch.mps
        recommended = float(mps.recommended_max_memory())
        if limit_mb > 0 and recommended > 0:
            fraction = min(2.0, limit_mb * MB / recommended)
            mps.set_per_process_memory_fraction(fraction)
            return fraction * recommended
    except (AttributeError, RuntimeError):
        pass
    return 0.0
