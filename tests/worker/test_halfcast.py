"""Loading in half precision gives back the checkpoint's fp32 pages as it casts.

What is measured is the resident size of the checkpoint's mapping, read from
``/proc/self/smaps`` (Linux's own account, the one ``ru_maxrss`` and ``VmHWM`` add up), so the
tests say nothing about macOS, where nothing is released.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from bench import large_model
from sharpmld.worker import halfcast
from sharpmld.worker.model import load_model

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="pages are released on Linux only")
MIB = 1 << 20


def mapping_rss(path: Path) -> int:
    """Bytes of ``path``'s mappings resident in this process (0 once it is unmapped)."""
    wanted, total, inside = os.path.realpath(path), 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                inside = len(fields) >= 6 and fields[5] == wanted
            elif inside and fields[0] == "Rss:":
                total += int(fields[1]) * 1024
    return total


def test_a_mapped_tensor_gives_its_pages_back_and_still_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save({"w": torch.randn(MIB)}, path)  # 4 MiB of fp32
    w = torch.load(path, mmap=True, weights_only=True)["w"]
    expected = w.sum().item()  # reads every page
    assert mapping_rss(path) >= 4 * MIB

    released = halfcast.release_pages(w, halfcast.mapped_ranges(path))

    assert released >= 4 * MIB - 2 * 4096
    assert mapping_rss(path) <= 2 * 4096
    assert w.sum().item() == expected  # read again from the file, not zeroed


def test_memory_outside_the_checkpoint_mapping_is_never_released(tmp_path: Path) -> None:
    path, other = tmp_path / "w.pt", tmp_path / "other.pt"
    torch.save({"w": torch.ones(MIB)}, path)
    torch.save({"w": torch.ones(MIB)}, other)
    ranges = halfcast.mapped_ranges(path)
    anonymous = torch.ones(MIB)  # madvise would zero these pages
    elsewhere = torch.load(other, mmap=True, weights_only=True)["w"]
    elsewhere.sum()

    assert halfcast.release_pages(anonymous, ranges) == 0
    assert halfcast.release_pages(elsewhere, ranges) == 0
    assert anonymous.sum().item() == MIB
    assert mapping_rss(other) >= 4 * MIB


def test_loading_in_bf16_never_holds_the_whole_fp32_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Eight 1 MiB linear layers (and a stem): the fp32 file is about 8.5 MiB.
    monkeypatch.setenv(large_model.MB_ENV, "8")
    monkeypatch.setenv(large_model.WIDTH_ENV, "512")
    monkeypatch.setenv(large_model.SIDE_ENV, "8")
    checkpoint = tmp_path / "large.pt"
    large_model.write_checkpoint(checkpoint, seed=7)
    assert checkpoint.stat().st_size > 8 * MIB
    held: list[int] = []
    real_release = halfcast.release_pages

    def observed(tensor: torch.Tensor, ranges: list[tuple[int, int]]) -> int:
        held.append(mapping_rss(checkpoint))  # after this tensor's cast, before its release
        return real_release(tensor, ranges)

    monkeypatch.setattr(halfcast, "release_pages", observed)
    loaded = load_model("bench.large_model:create", checkpoint, "cpu", "bf16")

    assert held, "the weights were not cast one by one"
    assert max(held) <= 2 * MIB + 64 * 1024  # one layer's fp32 pages, give or take the edges
    assert mapping_rss(checkpoint) == 0  # the fp32 mapping is gone before the first photo
    fp32 = load_model("bench.large_model:create", checkpoint, "cpu", "fp32").module
    expected = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in fp32.state_dict().items()}
    got = loaded.module.state_dict()
    assert {t.dtype for t in loaded.module.parameters()} == {torch.bfloat16}
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key
