"""How the worker's memory is measured: the footprint on macOS, the resident size elsewhere.

No Mac here: ``FootprintReader`` is driven through a stand-in for libproc that fills the buffer
as ``struct rusage_info_v2`` of the macOS SDK's ``<sys/resource.h>`` lays it out, and the
tree walk runs on real processes with an injected per-process footprint.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from sharpmld.supervisor.footprint import RUSAGE_INFO_V2, FootprintReader, RusageInfoV2
from sharpmld.supervisor.memory import TreeMemory, descendants, resident_bytes

FOOTPRINT_OFFSET = 72  # <sys/resource.h>: uuid[16], then seven uint64_t before ri_phys_footprint


class FakeLibproc:
    """``proc_pid_rusage`` as libproc.h documents it: fill the buffer, return 0 (else -1)."""

    def __init__(self, footprints: dict[int, int]) -> None:
        self.footprints = footprints
        self.calls: list[tuple[int, int]] = []

    def proc_pid_rusage(self, pid: int, flavor: int, buffer: Any) -> int:
        self.calls.append((pid, flavor))
        if pid not in self.footprints:
            return -1  # ESRCH / EPERM
        address = ctypes.addressof(buffer.contents)
        ctypes.memmove(address + FOOTPRINT_OFFSET, ctypes.byref(ctypes.c_uint64(self.footprints[pid])), 8)
        return 0


def test_the_structure_is_laid_out_as_the_macos_header() -> None:
    assert ctypes.sizeof(RusageInfoV2) == 160
    assert RusageInfoV2.ri_phys_footprint.offset == FOOTPRINT_OFFSET
    assert RusageInfoV2.ri_resident_size.offset == FOOTPRINT_OFFSET - 8
    assert RUSAGE_INFO_V2 == 2


def test_the_reader_asks_for_v2_and_returns_the_footprint_field() -> None:
    lib = FakeLibproc({42: 5 << 30})
    read = FootprintReader(lib=lib)
    assert read(42) == 5 << 30
    assert lib.calls == [(42, RUSAGE_INFO_V2)]


def test_a_process_that_cannot_be_read_has_no_footprint() -> None:
    assert FootprintReader(lib=FakeLibproc({}))(42) is None


def test_off_macos_there_is_no_footprint_and_no_library_is_loaded() -> None:
    assert FootprintReader(platform="linux")(1) is None


@pytest.fixture
def tree() -> Iterator[tuple[int, int]]:
    """A real worker-like tree: a child that started a grandchild; both end when stdin closes."""
    grandchild = "import sys; sys.stdin.read()"
    child = (
        "import subprocess, sys; "
        f"p = subprocess.Popen([sys.executable, '-c', {grandchild!r}], stdin=subprocess.PIPE); "
        "sys.stdin.read(); p.stdin.close(); p.wait()"
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not descendants(proc.pid):
            assert time.monotonic() < deadline, "the grandchild never started"
            time.sleep(0.01)
        (grand,) = descendants(proc.pid)
        yield proc.pid, grand
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def test_on_macos_a_tree_counts_each_process_footprint(tree: tuple[int, int]) -> None:
    root, grand = tree
    measure = TreeMemory(
        "darwin", footprint=FootprintReader(lib=FakeLibproc({root: 3 << 30, grand: 1 << 30}))
    )
    assert measure.kind == "physical footprint"
    assert measure(root) == 4 << 30  # not the few MB of RSS the two processes have


def test_on_macos_an_unreadable_footprint_counts_the_resident_size(tree: tuple[int, int]) -> None:
    root, grand = tree
    measure = TreeMemory("darwin", footprint=FootprintReader(lib=FakeLibproc({root: 3 << 30})))
    rss = resident_bytes(grand)
    assert rss and 0 < measure(root) - (3 << 30) <= 2 * rss


def test_on_linux_a_tree_counts_resident_sizes_and_never_asks_for_a_footprint(tree: tuple[int, int]) -> None:
    root, grand = tree

    def no_footprint(_pid: int) -> int | None:
        raise AssertionError("asked for a footprint off macOS")

    measure = TreeMemory("linux", footprint=no_footprint)
    assert measure.kind == "resident memory"
    expected = sum(psutil.Process(p).memory_info().rss for p in (root, grand))
    assert measure(root) == pytest.approx(expected, rel=0.2)


def test_a_worker_that_is_gone_holds_nothing() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    assert TreeMemory("linux")(proc.pid) == 0
    assert TreeMemory("darwin", footprint=FootprintReader(lib=FakeLibproc({})))(proc.pid) == 0
