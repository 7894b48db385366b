"""The web app's security rules, seen from a real browser (system Chromium, real ``serve``).

What a hostile page on the person's own machine or network can make their browser do:
reach ``serve`` under another name after a DNS rebinding, submit a form or a fetch to it from
another origin (CSRF), or read its answers across origins (CORS). Chromium's
``--host-resolver-rules`` stands in for a rebinding DNS server (a name that resolves to
127.0.0.1); another origin is a second little HTTP server on another port.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e import test_pages_browser_e2e as pages
from tests.support.browser import CHROMIUM, SOFTWARE_GL

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium"), pytest.mark.timeout(180)]

REBOUND = "rebind.test"
FAILED = pages.FAILED
hostile_server = pages.hostile_server  # a fixture: a served tree with a failed job, no daemon


@pytest.fixture
def attacker(tmp_path: Path, hostile_server: str) -> Iterator[str]:
    """Another origin serving a page that tries to retry and read the served jobs."""
    site = tmp_path / "attacker"
    site.mkdir()
    target = f"{hostile_server}/api/jobs/{FAILED}/retry"
    (site / "form.html").write_text(
        f'<form id=f method=post action="{target}"></form>'
        '<script>document.getElementById("f").submit()</script>'
    )
    (site / "blank.html").write_text("<p>nothing here</p>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _root(tmp_path: Path) -> Path:
    return tmp_path / "root"


def test_a_rebound_name_gets_nothing_from_serve(hostile_server: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    port = hostile_server.rsplit(":", 1)[1]
    rules = f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*SOFTWARE_GL, rules])
        try:
            page = browser.new_page()
            answer = page.goto(f"http://{REBOUND}:{port}/")
            assert answer is not None and answer.status == 421
            assert FAILED not in page.content()
            files = page.goto(f"http://{REBOUND}:{port}/api/jobs")
            assert files is not None and files.status == 421 and FAILED not in page.content()
        finally:
            browser.close()


def test_another_origin_can_neither_change_nor_read_anything(
    browser: Browser,
    attacker: str,
    hostile_server: str,
    tmp_path: Path,
) -> None:
    page = browser.new_page()
    # A form that submits itself to the retry endpoint: the browser sends a foreign Origin.
    with page.expect_response(lambda r: r.url.endswith("/retry")) as posted:
        page.goto(f"{attacker}/form.html")
    assert posted.value.status == 403
    assert (_root(tmp_path) / "failed" / FAILED).is_dir(), "a cross-site form moved the job"
    # A script on the other origin: its POST is refused and its reads are blocked (no CORS).
    page.goto(f"{attacker}/blank.html")
    outcome = page.evaluate(
        """async (base) => {
            const out = {};
            try { await fetch(base + "/api/jobs", {mode: "cors"}); out.read = "allowed"; }
            catch (e) { out.read = "blocked"; }
            try {
                await fetch(base + "/api/jobs/%s/cancel", {method: "POST", mode: "no-cors"});
                out.post = "sent";
            } catch (e) { out.post = "failed"; }
            return out;
        }""".replace("%s", FAILED),
        hostile_server,
    )
    assert outcome["read"] == "blocked"
    assert (_root(tmp_path) / "failed" / FAILED).is_dir() and not any((_root(tmp_path) / "inbox").iterdir())
