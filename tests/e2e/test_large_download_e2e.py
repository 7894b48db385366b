"""A SHARP-sized .ply (66 MB) through a real ``sharpmld serve``: a download that breaks off
resumes where it stopped, and a viewer can seek into the middle of the file."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest

from tests.e2e import test_pages_browser_e2e as pages

DONE = "20260501T090000Z-garden-abcd"
SIZE = 66 * 1024 * 1024  # 1,179,648 Gaussians at 56 bytes, and the header


@pytest.fixture
def big(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    root = tmp_path / "root"
    for state in ("inbox", "working", "done", "failed"):
        (root / state).mkdir(parents=True)
    job = root / "done" / DONE
    job.mkdir()
    data = os.urandom(SIZE)
    (job / "scene.ply").write_bytes(data)
    for base in pages._serve(root, tmp_path / "serve.log"):
        yield f"{base}/files/done/{DONE}/scene.ply", data


def _get(url: str, headers: dict[str, str], limit: int | None = None) -> tuple[int, Message, bytes]:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as r:
        body = r.read(limit) if limit is not None else r.read()
        return r.status, r.headers, body


def test_a_broken_off_download_resumes_and_a_reader_can_seek(big: tuple[str, bytes]) -> None:
    url, data = big
    # The first 10 MB, then the connection is dropped.
    status, headers, first = _get(url, {}, limit=10 * 1024 * 1024)
    assert status == 200 and int(headers["Content-Length"]) == SIZE
    etag = headers["ETag"]
    assert etag
    # Resume from where it stopped, only if the file is still the same one.
    status, headers, rest = _get(url, {"Range": f"bytes={len(first)}-", "If-Range": etag})
    assert status == 206 and headers["Content-Range"] == f"bytes {len(first)}-{SIZE - 1}/{SIZE}"
    assert hashlib.sha256(first + rest).digest() == hashlib.sha256(data).digest()
    # Seek: one Gaussian's 56 bytes in the middle of the file.
    middle = SIZE // 2
    status, _, chunk = _get(url, {"Range": f"bytes={middle}-{middle + 55}"})
    assert status == 206 and chunk == data[middle : middle + 56]
