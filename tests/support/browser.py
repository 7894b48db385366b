"""The system Chromium, driven by Playwright, for tests of the web app in a real browser.

The browser is Debian's ``chromium`` (installed by ``.ci/run`` when missing); Playwright's
own browser download is never used, so nothing is fetched at test time. WebGL2 runs on
SwiftShader, Chromium's software renderer, which is enough for the viewer's tests.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Software WebGL2: ANGLE over SwiftShader (Chromium refuses it without the last flag).
SOFTWARE_GL = ("--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader")

needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium (apt-get install chromium)")


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A headless system Chromium; skips the test when Chromium or Playwright is missing."""
    if CHROMIUM is None:
        pytest.skip("no system Chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(SOFTWARE_GL))
        try:
            yield chromium
        finally:
            chromium.close()
