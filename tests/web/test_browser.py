"""The browser the web tests rely on: headless system Chromium with WebGL2 in software."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def test_the_system_chromium_offers_webgl2(browser: Browser) -> None:
    page = browser.new_page()
    page.set_content("<canvas id=c></canvas>")
    renderer = page.evaluate(
        """() => {
            const gl = document.getElementById('c').getContext('webgl2');
            return gl ? gl.getParameter(gl.RENDERER) : null;
        }"""
    )
    assert renderer is not None, "no WebGL2 context: the viewer cannot run in this browser"
