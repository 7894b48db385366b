"""``sharpmld doctor`` states the worker memory cap in force and how it was derived."""

from __future__ import annotations

from pathlib import Path

from sharpmld.cli.doctor import format_report, memory_cap_check
from sharpmld.core.config import Config

GIB = 1 << 30


def test_on_an_8_gb_mac_doctor_says_the_cap_is_six_tenths_of_its_ram() -> None:
    check = memory_cap_check(Config(Path("/r"), None), ram=lambda: 8 * GIB)
    assert format_report([check]).splitlines()[0] == (
        "[ok] worker memory cap: 4.8 GB (0.6 × 8 GB RAM; set [worker] max_memory_mb to change)"
    )


def test_doctor_quotes_a_cap_set_by_hand_and_an_absent_one() -> None:
    def ram() -> int:
        raise AssertionError("a numeric cap does not depend on the RAM")

    by_hand = memory_cap_check(Config(Path("/r"), None, {"worker": {"max_memory_mb": 6144}}), ram=ram)
    assert by_hand.detail == "6 GB (max_memory_mb = 6144; set [worker] max_memory_mb to change)"
    off = memory_cap_check(Config(Path("/r"), None, {"worker": {"max_memory_mb": 0}}), ram=ram)
    assert off.ok and off.detail.startswith("off (")
