"""The viewer in a real browser, against the real ``sharpmld serve``: what a person sees.

The scene is the preview renderer's one-Gaussian-per-pixel test scene; the reference for each
view is the project's CPU preview renderer through the same camera. Screenshots are of the
canvas element as the browser composites it (system Chromium, WebGL2 on SwiftShader).
"""

from __future__ import annotations

import io
import json
import math
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from sharpmld.formats.gaussians import Gaussians, SceneMeta
from sharpmld.formats.ply import to_vertex_records
from sharpmld.formats.registry import FORMATS, WriteOptions
from sharpmld.queue.layout import RESULT_FILE, Layout
from sharpmld.worker.preview.camera import Camera
from sharpmld.worker.preview.views import preview, render
from tests.support import harness, roots
from tests.worker.test_preview import natural_image, one_per_pixel, psnr

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

U8 = npt.NDArray[np.uint8]
WIDTH, HEIGHT = 512, 384  # the canvas: 4× the 128×96 photo, so the input camera fits exactly


@dataclass(frozen=True)
class Served:
    base: str
    job_id: str
    g: Gaussians
    meta: SceneMeta


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scene_job(root: Path, g: Gaussians, meta: SceneMeta) -> str:
    """A done job with shot.splat (listed in result.json) and other.ply (the only output of 'other')."""
    job = roots.finished_job(
        Layout(root), "corner <b>&", {"input/shot.png": b"png", "input/other.png": b"png"}
    )
    records = to_vertex_records(g)
    options = WriteOptions()
    FORMATS["splat"].write(job / "shot.splat", records, meta, options)
    FORMATS["ply"].write(job / "other.ply", records, meta, options)
    result = json.loads((job / RESULT_FILE).read_text())
    facts = {"width": meta.width, "height": meta.height, "f_px": meta.f_px}
    result["images"] = [
        {"source": "shot.png", **facts, "outputs": {"splat": {"path": "shot.splat"}}},
        {"source": "other.png", **facts, "outputs": {"ply": {"path": "other.ply"}}},
    ]
    (job / RESULT_FILE).write_text(json.dumps(result))
    return job.name


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("viewer") / "root"
    Layout(root).ensure()
    g, meta = one_per_pixel(natural_image(128, 96))
    job_id = _scene_job(root, g, meta)
    port = _free_port()
    log = (root.parent / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sharpmld", "serve", "--root", str(root), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=harness.env(),
        cwd=root.parent,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/api/status", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return proc.poll() is not None  # let the assertion below report a dead server

    try:
        harness.wait_for(up, 60, "sharpmld serve to answer")
        assert proc.poll() is None, (root.parent / "serve.log").read_text()
        yield Served(base, job_id, g, meta)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _open(browser: Browser, served: Served, stem: str = "shot") -> Page:
    """The viewer page with its canvas exactly WIDTH×HEIGHT, loaded and drawn."""
    page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT + 200})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{served.base}/view/{served.job_id}/{stem}")
    top = page.evaluate("() => document.getElementById('view').getBoundingClientRect().top")
    assert top == int(top), f"the canvas starts at a fractional pixel ({top})"
    page.set_viewport_size({"width": WIDTH, "height": int(top) + HEIGHT})
    page.wait_for_function(f"() => document.getElementById('view').height === {HEIGHT}")
    page.evaluate("() => window.sharpmldViewer.loaded")
    page.evaluate("() => window.sharpmldViewer.reset()")
    assert not errors, errors
    return page


def _shot(page: Page) -> U8:
    png = page.locator("#view").screenshot()
    with Image.open(io.BytesIO(png)) as im:
        out: U8 = np.asarray(im.convert("RGB"))
    assert out.shape == (HEIGHT, WIDTH, 3)
    return out


def _info(page: Page) -> dict[str, Any]:
    info: dict[str, Any] = page.evaluate("() => window.sharpmldViewer.info()")
    return info


def _orbited(served: Served, page: Page, degrees: float) -> Camera:
    """The CPU camera of the viewer's documented orbit: the eye on a circle about the vertical
    axis through the pivot, looking at the pivot with image "down" along world +y."""
    info = _info(page)
    pivot, distance = np.asarray(info["pivot"], np.float64), float(info["distance"])
    theta = math.radians(degrees)
    eye = pivot - distance * np.array([math.sin(theta), 0.0, math.cos(theta)])
    f = served.meta.f_px * WIDTH / served.meta.width
    return Camera.look_at(f, f, WIDTH / 2, HEIGHT / 2, eye, pivot)


def test_first_frame_is_the_cpu_preview_of_the_input_view(browser: Browser, served: Served) -> None:
    page = _open(browser, served)
    info = _info(page)
    assert info["loaded"] == info["total"] == len(served.g)
    shot = _shot(page)
    reference = preview(served.g, served.meta, WIDTH)
    assert psnr(shot, reference) >= 25.0


def test_an_orbit_of_30_degrees_and_back_matches_again(browser: Browser, served: Served) -> None:
    page = _open(browser, served)
    home = _shot(page)
    page.evaluate("() => window.sharpmldViewer.orbit(30)")
    turned = _shot(page)
    assert psnr(turned, home) < 20.0, "the orbit did not move the camera"
    cpu_turned = render(served.g, _orbited(served, page, 30), WIDTH, HEIGHT)
    assert psnr(turned, cpu_turned) >= 25.0
    page.evaluate("() => window.sharpmldViewer.orbit(-30)")
    back = _shot(page)
    assert psnr(back, preview(served.g, served.meta, WIDTH)) >= 25.0


def test_the_picture_is_upright_and_not_mirrored(browser: Browser, served: Served) -> None:
    page = _open(browser, served)
    shot = _shot(page)
    photo = natural_image(128, 96)
    small = np.asarray(Image.fromarray(shot).resize((128, 96), Image.Resampling.BOX))
    # Compared with the photo itself, not the CPU renderer: both could share a flip.
    assert psnr(small, photo) >= 25.0
    assert psnr(small, photo[::-1]) < 15.0 and psnr(small, photo[:, ::-1]) < 15.0
    # The red disc sits in the photo's top-left quarter, the blue rectangle bottom right.
    r, g, b = (int(c) for c in small[40, 40])
    assert r > 180 and g < 90 and b < 90, (r, g, b)
    r, g, b = (int(c) for c in small[65, 90])
    assert b > 150 and r < 80, (r, g, b)


def test_a_ply_streams_and_draws_like_its_splat(browser: Browser, served: Served) -> None:
    page = _open(browser, served, stem="other")
    assert _info(page)["loaded"] == len(served.g)
    assert psnr(_shot(page), preview(served.g, served.meta, WIDTH)) >= 25.0


def test_a_drag_orbits_and_the_r_key_resets_to_the_photo(browser: Browser, served: Served) -> None:
    page = _open(browser, served)
    home = _shot(page)
    page.mouse.move(WIDTH / 2, 40 + HEIGHT / 2)
    page.mouse.down()
    page.mouse.move(WIDTH / 2 + 120, 40 + HEIGHT / 2, steps=4)
    page.mouse.up()
    page.evaluate("() => window.sharpmldViewer.settled()")
    assert psnr(_shot(page), home) < 20.0, "dragging did not move the camera"
    page.keyboard.press("r")
    page.evaluate("() => window.sharpmldViewer.settled()")
    assert psnr(_shot(page), home) >= 40.0


def test_the_page_shows_how_far_loading_got(browser: Browser, served: Served) -> None:
    page = _open(browser, served)
    assert page.locator("#status").inner_text() == f"{len(served.g):,} Gaussians"
    assert _info(page)["chunks"] >= 1


def _canvas_centre(page: Page) -> tuple[float, float]:
    box = page.locator("#view").bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_wheel_and_trackpad_pinch_zoom(browser: Browser, served: Served) -> None:
    page = _open(browser, served)
    x, y = _canvas_centre(page)
    start = _info(page)["distance"]
    page.mouse.move(x, y)
    page.mouse.wheel(0, 200)  # a mouse wheel turned towards the person: away from the scene
    page.evaluate("() => window.sharpmldViewer.settled()")
    farther = _info(page)["distance"]
    assert farther > start
    page.keyboard.down("Control")  # a trackpad pinch arrives as a ctrl+wheel event
    page.mouse.wheel(0, -50)
    page.keyboard.up("Control")
    page.evaluate("() => window.sharpmldViewer.settled()")
    assert _info(page)["distance"] < farther


def test_touch_drag_orbits_and_pinch_zooms(browser: Browser, served: Served) -> None:
    page = _open(browser, served)
    x, y = _canvas_centre(page)
    home = _info(page)
    cdp = page.context.new_cdp_session(page)

    def touch(kind: str, *points: tuple[float, float]) -> None:
        touch_points = [{"x": px, "y": py, "id": i} for i, (px, py) in enumerate(points)]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": touch_points})

    touch("touchStart", (x, y))
    for step in range(1, 5):
        touch("touchMove", (x + 20 * step, y))
    touch("touchEnd")
    page.evaluate("() => window.sharpmldViewer.settled()")
    after_drag = _info(page)
    assert after_drag["yaw"] != home["yaw"] and after_drag["distance"] == home["distance"]
    touch("touchStart", (x - 30, y), (x + 30, y))
    for step in range(1, 5):
        touch("touchMove", (x - 30 - 15 * step, y), (x + 30 + 15 * step, y))
    touch("touchEnd")
    page.evaluate("() => window.sharpmldViewer.settled()")
    assert _info(page)["distance"] < after_drag["distance"]  # fingers apart: closer


def test_keys_orbit_pan_zoom_and_reset(browser: Browser, served: Served) -> None:
    page = _open(browser, served)
    home = _info(page)
    page.locator("#view").focus()
    page.keyboard.press("ArrowRight")
    assert _info(page)["yaw"] != home["yaw"]
    page.keyboard.press("Shift+ArrowUp")
    assert _info(page)["pivot"] != home["pivot"]
    page.keyboard.press("+")
    assert _info(page)["distance"] < home["distance"]
    page.keyboard.press("0")
    back = _info(page)
    assert (back["yaw"], back["pitch"], back["pivot"], back["distance"]) == (
        home["yaw"],
        home["pitch"],
        home["pivot"],
        home["distance"],
    )
