"""The worker's memory cap resolves "auto" to a share of the machine's RAM (sharpmld.core.memcap).

RAM sizes are injected: the figures are those of the Macs the cap is meant for, not of the
machine running the tests.
"""

from __future__ import annotations

import pytest

from sharpmld.core import memcap
from sharpmld.core.units import MB

GIB = 1 << 30


def never() -> int:
    raise AssertionError("a numeric cap must not ask for the RAM size")


def test_auto_on_an_8_gb_mac_is_six_tenths_of_its_ram() -> None:
    cap = memcap.resolve("auto", ram=lambda: 8 * GIB)
    assert cap.mb == pytest.approx(0.6 * 8 * 1024)  # 4915.2 MB
    assert cap.bytes == pytest.approx(0.6 * 8 * GIB, rel=1e-6)
    assert cap.ram_bytes == 8 * GIB


def test_a_number_is_the_cap_in_mb_and_0_is_off() -> None:
    assert memcap.resolve(6000, ram=never).bytes == 6000 * MB
    off = memcap.resolve(0, ram=never)
    assert off.mb == 0 and off.bytes == 0


def test_other_words_are_refused() -> None:
    with pytest.raises(ValueError, match="auto"):
        memcap.resolve("lots", ram=never)


def test_the_doctor_line_states_the_cap_and_how_it_was_derived() -> None:
    assert memcap.resolve("auto", ram=lambda: 24 * GIB).describe() == (
        "14.4 GB (0.6 × 24 GB RAM; set [worker] max_memory_mb to change)"
    )
    assert memcap.resolve("auto", ram=lambda: 8 * GIB).describe().startswith("4.8 GB (")
    assert memcap.resolve(16000, ram=never).describe() == (
        "15.6 GB (max_memory_mb = 16000; set [worker] max_memory_mb to change)"
    )
    assert memcap.resolve(0, ram=never).describe() == (
        "off (max_memory_mb = 0; set [worker] max_memory_mb to change)"
    )


def test_the_real_machine_resolves_to_a_share_of_its_ram() -> None:
    cap = memcap.resolve("auto")
    assert cap.ram_bytes > 0
    assert cap.bytes == pytest.approx(0.6 * cap.ram_bytes, rel=1e-3)
