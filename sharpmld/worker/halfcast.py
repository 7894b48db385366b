"""Casting a memory-mapped network to half precision without holding both copies at once.

The fast load leaves every weight inside one private mapping of the checkpoint file, and
Linux counts each page read from a mapping in the process's resident size until the mapping
goes away. ``Module.to(dtype)`` reads every weight before any is freed, so on the real SHARP
network the worker held the fp32 file (2.8 GB) and the bf16 copy (1.4 GB) at once: a 4.58 GB
peak before the first photo, against the 3.86 GB the low-memory mode aims for. Casting one
tensor at a time and giving its source pages back as soon as its copy exists keeps the peak
near the half-precision copy.

Pages are given back with ``madvise(MADV_DONTNEED)``, and only on Linux, where madvise(2)
documents it for a private file mapping: the pages are dropped and a later access reads them
again from the file, so nothing is lost. On anonymous memory the same call would zero the
pages, which is why a tensor is released only when all of its bytes lie in a private mapping
of the checkpoint file (read from ``/proc/self/maps``). Elsewhere the cast still goes one
tensor at a time and nothing is released (not measured on macOS, where clean file pages are
not expected to count against the process in the same way).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import mmap
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

MADV_DONTNEED = 4  # Linux's value (asm-generic/mman-common.h)
PROC_MAPS = Path("/proc/self/maps")


def mapped_ranges(path: Path, maps: Path = PROC_MAPS) -> list[tuple[int, int]]:
    """The address ranges of this process's private mappings of ``path`` (empty off Linux)."""
    if sys.platform != "linux" or not maps.exists():
        return []
    wanted = os.path.realpath(path)
    ranges = []
    for line in maps.read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or fields[5] != wanted or not fields[1].endswith("p"):
            continue
        low, _, high = fields[0].partition("-")
        ranges.append((int(low, 16), int(high, 16)))
    return ranges


@functools.cache
def _madvise() -> Callable[[int, int, int], int] | None:
    name = ctypes.util.find_library("c")
    if sys.platform != "linux" or name is None:
        return None
    func = ctypes.CDLL(name, use_errno=True).madvise
    func.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    func.restype = ctypes.c_int
    return func  # type: ignore[no-any-return]


def release_pages(tensor: torch.Tensor, ranges: list[tuple[int, int]]) -> int:
    """Drop the whole pages of ``tensor``'s storage if it lies in one of ``ranges``; the
    number of bytes given back (0 when it does not, or off Linux)."""
    storage = tensor.untyped_storage()
    start, nbytes = storage.data_ptr(), storage.nbytes()
    if nbytes == 0 or not any(low <= start and start + nbytes <= high for low, high in ranges):
        return 0
    madvise = _madvise()
    if madvise is None:
        return 0
    page = mmap.PAGESIZE
    first = -(-start // page) * page  # whole pages only: a neighbour may share the edge pages
    last = (start + nbytes) // page * page
    if last <= first or madvise(first, last - first, MADV_DONTNEED) != 0:
        return 0
    return last - first


def cast_one_by_one(module: torch.nn.Module, dtype: torch.dtype, checkpoint: Path) -> int:
    """Cast ``module``'s floating-point parameters and buffers to ``dtype`` in place (and copy
    the others), one tensor at a time, releasing each source's pages of ``checkpoint`` so that
    the mapping is gone at the end; the bytes released.

    Parameters keep their identity (``.data`` is replaced), so tied weights stay tied and
    ``module.parameters()`` needs no rebuilding, as with ``Module.to``.
    """
    ranges = mapped_ranges(checkpoint)
    released = 0
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            source = tensor.data
            # Integer buffers are copied too: while one tensor still uses it, the mapping stays.
            tensor.data = source.to(dtype if source.is_floating_point() else source.dtype, copy=True)
            released += release_pages(source, ranges)
            del source
    return released
