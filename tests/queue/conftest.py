"""A root with one dropped folder, ``trip`` (one PNG), for the queue's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from sharpmld.queue.layout import Layout


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    out = Layout(tmp_path / "root")
    out.ensure()
    (out.inbox / "trip").mkdir()
    (out.inbox / "trip" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    return out
