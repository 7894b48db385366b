"""The Queue and Job pages in the system Chromium, against a real ``sharpmld serve`` process.

The live tests also run the real daemon with the stand-in model held at a gate
(``TINY_SHARP_GATE``): each forward pass waits until the test lets it through, so the page
is looked at while a photo is in hand, for as long as the test needs, with no timing guess.
Waits are Playwright's (``expect`` polls the page until its deadline).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from sharpmld.queue.record import Job, JobRecord
from tests.intake import corpus
from tests.support import harness
from tests.support.harness import Daemon, jobs, wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Dialog, Locator, Page

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = pytest.mark.timeout(240)

DONE = "20260501T090000Z-garden-abcd"
FAILED = "20260501T080000Z-broken-beef"
# Both kinds of injection: a script element, and an element whose handler runs on load.
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&"
HOSTILE_PHOTO = "<img src=y onerror=alert(3)>.jpg"
LIVE = 60_000  # ms: a deadline for what the daemon and the 2 s poll must bring to the page
# Where to keep a screenshot of the queue for a person to look at (off unless asked).
SHOTS = os.environ.get("SCREENSHOT_DIR")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _serve(root: Path, log: Path) -> Iterator[str]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "sharpmld", "serve", "--root", str(root), "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=harness.env(), cwd=root.parent)
    try:
        wait_for(lambda: proc.poll() is not None or _answers(base + "/"), 30, "serve to answer")
        assert proc.poll() is None, log.read_text("utf-8", "replace")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def hostile_server(tmp_path: Path) -> Iterator[str]:
    """A served tree whose jobs carry hostile names, with no daemon running."""
    root = tmp_path / "root"
    for state in ("inbox", "working", "done", "failed"):
        (root / state).mkdir(parents=True)
    done = root / "done" / DONE
    (done / "input").mkdir(parents=True)
    (done / "input" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    Job(done, JobRecord(DONE, HOSTILE, "folder")).save()
    rejected = [{"source": HOSTILE_PHOTO, "code": "decode_failed", "message": "not a photo"}]
    result = {
        "status": "done",
        "duration_seconds": 3.0,
        "images": [{"source": "a.jpg"}],
        "rejected": rejected,
    }
    (done / "result.json").write_text(json.dumps(result))
    failed = root / "failed" / FAILED
    (failed / "input").mkdir(parents=True)
    Job(failed, JobRecord(FAILED, HOSTILE, "folder")).save()
    (failed / "error.json").write_text(json.dumps({"code": "cancelled", "message": "Stopped."}))
    yield from _serve(root, tmp_path / "serve.log")


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    path = tmp_path / "gate"
    path.mkdir()
    return path


@pytest.fixture
def live(root: Path, gate: Path, daemons: list[Daemon], tmp_path: Path) -> Iterator[str]:
    """A real daemon with the stand-in model held at ``gate``, and ``serve`` on the same root."""
    daemons.append(Daemon(root, extra_env={"TINY_SHARP_GATE": str(gate)}))
    try:
        yield from _serve(root, tmp_path / "serve.log")
    finally:
        (gate / "open").touch()  # let a held worker go, so the daemon stops at once


def _drop(root: Path, name: str, count: int) -> None:
    folder = root / "inbox" / name
    folder.mkdir(parents=True)
    for i in range(count):
        rgb = (np.random.default_rng(i).random((64, 80, 3)) * 255).astype(np.uint8)
        corpus.write_png(folder / f"p{i}.png", rgb)


def _held(gate: Path, n: int) -> None:
    wait_for(lambda: (gate / f"called-{n}").exists(), 90, f"forward pass {n} to reach the gate")


def _dialogs(page: Page) -> list[str]:
    seen: list[str] = []

    def note(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", note)
    return seen


def _row(page: Page, text: str) -> Locator:
    return page.locator("#jobs tbody tr", has_text=text)


def test_a_hostile_job_name_is_shown_as_text_and_runs_nothing_on_any_page(
    browser: Browser, hostile_server: str
) -> None:
    page = browser.new_page()
    dialogs = _dialogs(page)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    with page.expect_response(lambda r: r.url.endswith("/api/jobs")):  # queue.js rebuilt the rows
        page.goto(hostile_server + "/")
    expect(page.locator("#jobs tbody a")).to_have_text([HOSTILE, HOSTILE])
    expect(page.get_by_text("Stopped. (cancelled)", exact=True)).to_have_count(1)
    for job in (DONE, FAILED):
        page.goto(f"{hostile_server}/jobs/{job}")
        expect(page.locator("h1")).to_have_text(HOSTILE)
        # Only the page's own images exist: no <img> was made out of a name.
        assert page.locator("img[src='x'], img[src='y']").count() == 0
    page.goto(f"{hostile_server}/jobs/{DONE}")
    expect(page.locator("li strong")).to_have_text(HOSTILE_PHOTO)
    assert page.locator("script").count() == 0  # the job page has no script, not even a name's
    page.goto(hostile_server + "/")
    assert page.locator("script").count() == 1  # queue.js alone
    page.wait_for_load_state("networkidle")
    assert dialogs == [], f"a name ran as script: {dialogs}"
    elsewhere = [u for u in asked if not u.startswith(hostile_server + "/")]
    assert elsewhere == [], f"the pages need the network: {elsewhere}"  # no CDN, nothing outside


def test_the_queue_shows_a_running_job_photo_by_photo_as_the_daemon_goes(
    browser: Browser, live: str, root: Path, gate: Path
) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    page.goto(live + "/")
    expect(page.locator("#status .engine")).to_contain_text("Engine", timeout=LIVE)
    _drop(root, "porch", 3)
    _held(gate, 1)
    row = _row(page, "porch")
    expect(row.locator("td.state")).to_have_text("working", timeout=LIVE)
    expect(row.locator("li.photo.working .source")).to_have_text("p0.png", timeout=LIVE)
    expect(row.locator(".tally")).to_have_text("0 of 3 photos")
    (gate / "go-1").touch()
    _held(gate, 2)
    expect(row.locator("li.photo.done .source")).to_have_text("p0.png", timeout=LIVE)
    expect(row.locator("li.photo.working .source")).to_have_text("p1.png", timeout=LIVE)
    expect(row.locator("li.photo.waiting .source")).to_have_text("p2.png")
    expect(row.locator(".tally")).to_have_text("1 of 3 photos")
    expect(page.locator("#status .counts")).to_contain_text("working 1")
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / "queue.png"), full_page=True)
    (gate / "go-2").touch()
    (gate / "go-3").touch()
    expect(row.locator("td.state")).to_have_text("done", timeout=LIVE)
    expect(row.locator(".tally")).to_have_text("3 made")
    assert page.url == live + "/"  # all of it came by polling: the page was never reloaded

    # The job page of what the daemon made: every output listed in result.json is a download,
    # and each .splat has its 3D view.
    row.get_by_role("link", name="porch").click()
    expect(page.locator("h1")).to_have_text("porch")
    (done,) = jobs(root, "done")
    result = json.loads((done / "result.json").read_text())
    outputs = [o["path"] for i in result["images"] for o in i["outputs"].values() if "path" in o]
    assert any(o.endswith(".splat") for o in outputs) and any(o.endswith(".ply") for o in outputs)
    links = page.locator("ul.downloads a")
    for out in outputs:
        link = links.filter(has_text=out).first
        expect(link).to_have_attribute("href", f"/files/done/{done.name}/{out}")
        assert page.request.get(live + str(link.get_attribute("href"))).body() == (done / out).read_bytes()
    stems = sorted(o[: -len(".splat")] for o in outputs if o.endswith(".splat"))
    frames = page.locator("figure.viewer iframe")
    expect(frames).to_have_count(len(stems))
    assert sorted(str(f.get_attribute("src")) for f in frames.all()) == [
        f"/view/{done.name}/{s}" for s in stems
    ]
    expect(page.locator("dl.facts")).to_contain_text("Attempts")


def test_a_running_jobs_page_follows_it_to_the_end_without_a_reload_by_hand(
    browser: Browser, live: str, root: Path, gate: Path
) -> None:
    _drop(root, "attic", 2)
    _held(gate, 1)
    (working,) = wait_for(lambda: jobs(root, "working"), 30, "the job claimed")
    page = browser.new_page()
    loads: list[str] = []
    page.on("load", lambda p: loads.append(p.url))
    page.goto(f"{live}/jobs/{working.name}")
    expect(page.locator(".tally")).to_have_text("0 of 2 photos", timeout=LIVE)
    # Nothing changes while the photo is held: polls come and go and the page stays as it is.
    for _ in range(2):
        with page.expect_response(lambda r: r.url.endswith(f"/api/jobs/{working.name}"), timeout=LIVE):
            pass
    assert len(loads) == 1, f"the page reloaded while nothing changed: {loads}"
    (gate / "go-1").touch()
    _held(gate, 2)
    expect(page.locator(".tally")).to_have_text("1 of 2 photos", timeout=LIVE)
    (gate / "go-2").touch()
    expect(page.locator("p.meta")).to_contain_text("done", timeout=LIVE)
    expect(page.locator("ul.downloads a").first).to_be_visible()
    assert page.locator("script").count() == 0, "a finished job's page still polls"


def test_cancel_and_retry_work_from_the_queue_page(
    browser: Browser, live: str, root: Path, gate: Path
) -> None:
    page = browser.new_page()
    page.goto(live + "/")
    _drop(root, "slow", 2)
    _held(gate, 1)
    row = _row(page, "slow")
    expect(row.locator("td.state")).to_have_text("working", timeout=LIVE)
    row.locator("button.cancel").click()
    expect(page.locator("#notice")).to_have_text("Cancel requested: the job stops after the photo in hand.")
    (working,) = jobs(root, "working")
    wait_for(lambda: (working / "CANCEL").exists(), 10, "the web app's cancel request")
    (gate / "go-1").touch()  # the photo in hand finishes: the boundary where the cancel applies
    expect(row.locator("td.state")).to_have_text("failed", timeout=LIVE)
    expect(row.locator("td.error")).to_contain_text("(cancelled)")
    expect(row.locator(".tally")).to_have_text("1 made")
    (failed,) = jobs(root, "failed")
    assert json.loads((failed / "error.json").read_text())["details"]["by"] == "web"

    (gate / "open").touch()  # from here on the model runs freely
    row.locator("button.retry").click()
    expect(page.locator("#notice")).to_have_text("Sent back to the inbox.")
    done = page.locator("#jobs tbody tr", has=page.locator("td.state.done"))
    expect(done).to_have_count(1, timeout=LIVE)
    expect(done).to_contain_text("slow")
    expect(done.locator(".tally")).to_have_text("2 made")
    assert not jobs(root, "failed") and len(jobs(root, "done")) == 1


def test_a_queued_job_is_cancelled_from_the_page_at_once(
    browser: Browser, root: Path, tmp_path: Path
) -> None:
    """No daemon: the inbox entry waits, and Cancel moves it to failed/ with its photos."""
    _drop(root, "queued", 2)
    for base in _serve(root, tmp_path / "serve.log"):
        page = browser.new_page()
        page.goto(base + "/")
        row = _row(page, "queued")
        expect(row.locator("td.state")).to_have_text("inbox")
        row.locator("button.cancel").click()
        expect(page.locator("#notice")).to_have_text("Cancelled: the job is in failed/, its photos kept.")
        expect(row.locator("td.state")).to_have_text("failed", timeout=LIVE)
        expect(row.locator("button.retry")).to_have_count(1)
    (failed,) = jobs(root, "failed")
    assert sorted(p.name for p in (failed / "input").iterdir()) == ["p0.png", "p1.png"]
