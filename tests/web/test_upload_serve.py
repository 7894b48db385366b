"""A real ``sharpmld serve`` and a client that goes away halfway through an upload."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sharpmld.core import fsio
from tests.support.harness import wait_for

pytestmark = pytest.mark.timeout(120)

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 400


def test_a_connection_dropped_mid_body_leaves_nothing_in_the_inbox(site: tuple[Path, str]) -> None:
    root, base = site
    url = urlsplit(base)
    head = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n' + JPEG
    total = len(head) + 2 * len(JPEG)  # what the body would have been: it never gets there
    request = (
        f"POST /api/jobs HTTP/1.1\r\nHost: {url.netloc}\r\nOrigin: {base}\r\n"
        f"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {total}\r\n\r\n"
    ).encode()
    inbox = root / "inbox"
    with socket.create_connection((url.hostname, url.port)) as conn:
        conn.sendall(request + head)
        staged = wait_for(
            lambda: [n for n in os.listdir(inbox) if fsio.is_temp_name(n)], 30, "the upload to be staged"
        )
    wait_for(lambda: os.listdir(inbox) == [], 30, lambda: f"the staged {staged} to go: {os.listdir(inbox)}")
