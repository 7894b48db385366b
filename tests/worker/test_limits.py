"""The worker caps its MPS allocator to the memory cap the daemon resolved.

No Mac here: a stand-in for ``torch.mps`` follows PyTorch's documented contract of
``set_per_process_memory_fraction`` (a share, 0 to 2, of ``recommended_max_memory()``, Metal's
``recommendedMaxWorkingSetSize``). The 8 GB Mac's working-set figure below is a stand-in
(two thirds of its RAM), not a measurement.
"""

from __future__ import annotations

import pytest

from sharpmld.core import memcap
from sharpmld.core.units import MB
from sharpmld.worker import limits

GIB = 1 << 30


class FakeMps:
    def __init__(self, recommended: float) -> None:
        self.recommended = recommended
        self.fractions: list[float] = []

    def recommended_max_memory(self) -> float:
        return self.recommended

    def set_per_process_memory_fraction(self, fraction: float) -> None:
        if not 0 <= fraction <= 2:
            raise RuntimeError("invalid fraction value")  # as torch.mps does
        self.fractions.append(fraction)


def test_on_an_8_gb_mac_the_allocator_is_capped_to_six_tenths_of_the_ram() -> None:
    mps = FakeMps(recommended=8 * GIB * 2 / 3)
    cap = memcap.resolve("auto", ram=lambda: 8 * GIB)
    allowed = limits.cap_mps_memory(cap.mb, mps=mps)
    assert allowed == pytest.approx(0.6 * 8 * GIB, rel=1e-6)
    assert mps.fractions == [pytest.approx(0.9)]


def test_a_cap_above_twice_the_working_set_is_held_at_twice_it() -> None:
    mps = FakeMps(recommended=8 * GIB * 2 / 3)
    assert limits.cap_mps_memory(16000, mps=mps) == pytest.approx(2 * mps.recommended)
    assert mps.fractions == [2.0]


def test_no_cap_leaves_the_allocator_alone() -> None:
    mps = FakeMps(recommended=8 * GIB)
    assert limits.cap_mps_memory(0, mps=mps) == 0
    assert mps.fractions == []


def test_without_mps_nothing_is_capped() -> None:
    class NoMps:
        def recommended_max_memory(self) -> float:
            raise RuntimeError("MPS backend is not available")

    assert limits.cap_mps_memory(4000 * MB, mps=NoMps()) == 0
