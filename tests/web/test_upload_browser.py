"""The upload page in the system Chromium, against the real ``sharpmld serve`` (and daemon)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from tests.intake import corpus
from tests.support import harness
from tests.support.harness import Daemon
from tests.web.upload_site import MAX_FILE_MB

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.timeout(240)


def _inbox(root: Path) -> list[str]:
    return sorted(os.listdir(root / "inbox"))


def _photo(path: Path, seed: int) -> Path:
    rgb = (np.random.default_rng(seed).random((120, 160, 3)) * 255).astype(np.uint8)
    return corpus.write_jpeg(path, rgb)


def _open(browser: Browser, base: str) -> Page:
    page = browser.new_page()
    page.goto(f"{base}/upload")
    return page


def test_a_photo_from_the_file_input_ends_as_a_done_job(
    site: tuple[Path, str], tmp_path: Path, browser: Browser, daemons: list[Daemon]
) -> None:
    root, base = site
    daemons.append(Daemon(root))
    photo = _photo(tmp_path / "porch.jpg", 1)
    page = _open(browser, base)
    page.set_input_files("#photos", str(photo))
    page.fill("#name", "front porch")
    page.click("#send")
    page.wait_for_selector("#status[data-state=done]", timeout=180_000)
    text = page.text_content("#status") or ""
    done = harness.jobs(root, "done")
    assert len(done) == 1 and done[0].name in text
    record = json.loads((done[0] / "job.json").read_text())
    assert record["original_name"] == "front porch"
    assert (done[0] / "input" / "porch.jpg").read_bytes() == photo.read_bytes()
    assert page.text_content("#error") == ""


def test_a_folder_from_the_folder_input_keeps_its_name_and_paths(
    site: tuple[Path, str], tmp_path: Path, browser: Browser
) -> None:
    root, base = site
    folder = tmp_path / "garden"
    (folder / "close").mkdir(parents=True)
    _photo(folder / "a.jpg", 2)
    _photo(folder / "close" / "b.jpg", 3)
    page = _open(browser, base)
    page.set_input_files("#folder", str(folder))
    page.click("#send")
    page.wait_for_selector("#status[data-state=inbox]", timeout=30_000)
    assert _inbox(root) == ["garden"]  # no daemon runs here: the entry waits in the inbox
    entry = root / "inbox" / "garden"
    assert sorted(str(p.relative_to(entry)) for p in entry.rglob("*")) == ["a.jpg", "close", "close/b.jpg"]


def _oversize(path: Path) -> None:
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * int(MAX_FILE_MB * 2**20 + 4096))


def _pdf(path: Path) -> None:
    path.write_bytes(b"%PDF-1.7\n" + b"x" * 5000)


@pytest.mark.parametrize("checked", [True, False], ids=["checked_first", "refused_while_streaming"])
@pytest.mark.parametrize(
    ("make", "says", "code"),
    [(_oversize, "under 0.5 MB", "file_too_large"), (_pdf, "PDF", "unsupported_type")],
    ids=["oversize", "wrong_type"],
)
def test_a_refused_file_gets_the_message_on_the_page_and_leaves_nothing(
    site: tuple[Path, str],
    tmp_path: Path,
    browser: Browser,
    make: Callable[[Path], None],
    says: str,
    code: str,
    checked: bool,
) -> None:
    """The page's check answers before any photo is sent; with the check let through (as a
    page that skips it would), the upload itself refuses while streaming, with the same words."""
    root, base = site
    path = tmp_path / "photo.jpg"
    make(path)
    good = _photo(tmp_path / "good.jpg", 4)
    page = _open(browser, base)
    if not checked:
        page.route("**/api/jobs/check", lambda route: route.fulfill(json={"ok": True, "ignored": []}))
    uploads: list[str] = []
    page.on(
        "request",
        lambda r: uploads.append(r.url) if r.method == "POST" and r.url.endswith("/api/jobs") else None,
    )
    page.set_input_files("#photos", [str(good), str(path)])
    page.click("#send")
    page.wait_for_selector(f"#error[data-code={code}]", timeout=30_000)
    message = page.text_content("#error") or ""
    assert says in message and "photo.jpg" in message
    assert len(uploads) == (0 if checked else 1)
    assert _inbox(root) == []


HOSTILE = "stereo <img src=x onerror=window.pwned=1>"


def test_files_dropped_on_the_page_are_uploaded(
    site: tuple[Path, str], tmp_path: Path, browser: Browser
) -> None:
    """A drop of two photos (a DataTransfer made in the page, as a drag from the desktop gives),
    under a name that is HTML: the page shows it as text."""
    root, base = site
    photos = [_photo(tmp_path / f"{n}.jpg", i) for i, n in enumerate(("left", "right"))]
    page = _open(browser, base)
    page.evaluate(
        """(files) => {
            const dt = new DataTransfer();
            for (const [name, b64] of files) {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], name, { type: "image/jpeg" }));
            }
            const drop = document.getElementById("drop");
            drop.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""",
        [[p.name, base64.b64encode(p.read_bytes()).decode()] for p in photos],
    )
    page.fill("#name", HOSTILE)
    page.click("#send")
    page.wait_for_selector("#status[data-state=inbox]", timeout=30_000)
    assert HOSTILE in (page.text_content("#status") or ""), "the name is shown as text"
    assert page.evaluate("window.pwned") is None, "and never run as HTML"
    entry = root / "inbox" / HOSTILE
    assert sorted(p.name for p in entry.iterdir()) == ["left.jpg", "right.jpg"]
    assert (entry / "left.jpg").read_bytes() == photos[0].read_bytes()
