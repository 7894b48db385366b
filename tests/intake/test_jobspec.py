"""job.toml: every number checked as finite and sane, the key and value named; BOMs accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from sharpmld.core.errors import InvalidJobToml
from sharpmld.intake.jobspec import JobSpec, read_jobspec


def read(tmp_path: Path, text: str, *, prefix: bytes = b"") -> JobSpec:
    (tmp_path / "job.toml").write_bytes(prefix + text.encode("utf-8"))
    return read_jobspec(tmp_path)


@pytest.mark.parametrize(
    ("line", "key", "shown"),
    [
        ("f_px = nan", "f_px", "nan"),
        ("f_px = inf", "f_px", "inf"),
        ("f_px = -inf", "f_px", "-inf"),
        ("f_px = 1e-300", "f_px", "1e-300"),
        ("f_px = 1e300", "f_px", "1e+300"),
        ("f_px = 0", "f_px", "0"),
        ("priority = 99999999999999", "priority", "99999999999999"),
        ("priority = -99999999999999", "priority", "-99999999999999"),
        ("video_frames = 0", "video_frames", "0"),
        ("video_frames = 65", "video_frames", "65"),
    ],
)
def test_numbers_out_of_range_name_the_key_and_value(tmp_path: Path, line: str, key: str, shown: str) -> None:
    with pytest.raises(InvalidJobToml) as info:
        read(tmp_path, line + "\n")
    problem = info.value.details["problem"]
    assert f"'{key}'" in problem, problem
    assert f"got {shown}" in problem, problem
    assert info.value.code == "invalid_job_toml"


@pytest.mark.parametrize(
    ("line", "field", "value"),
    [
        ("f_px = 1450.0", "f_px", 1450.0),
        ("f_px = 1", "f_px", 1.0),
        ("f_px = 200000", "f_px", 200000.0),
        ("priority = -1000", "priority", -1000),
        ("priority = 1000000", "priority", 1000000),
        ("video_frames = 64", "video_frames", 64),
    ],
)
def test_sane_numbers_are_accepted(tmp_path: Path, line: str, field: str, value: float) -> None:
    assert getattr(read(tmp_path, line + "\n"), field) == value


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    """Older Windows Notepad saves UTF-8 with a BOM; TOML parsers reject it at line 1 column 1."""
    spec = read(tmp_path, 'priority = 7\nformats = ["ply"]\n', prefix=b"\xef\xbb\xbf")
    assert (spec.priority, spec.formats) == (7, ["ply"])


def test_bom_in_the_middle_is_still_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidJobToml):
        read(tmp_path, "priority = 7\n\ufeffx = 1\n")
