"""The viewer against two published viewers, side by side in one run, in headless Chromium.

One 1,179,648-Gaussian ``.splat`` (SHARP's count for one photo: one Gaussian per pixel of a
1536 × 768 picture at 2-5 m), the same canvas and the same input view for all three:

* ours, ``/view/{job}/{stem}`` from the real ``sharpmld serve``;
* Spark (``@sparkjsdev/spark`` on three.js) and gsplat.js (``gsplat``), installed from npm
  into a temporary folder at bench time (pinned versions below) and served from there by a
  plain static server, each driven by a small page written here.

Figures, all from the page's own clock (``performance.now()``, so since navigation start):
first frame = the animation frame after the first frame that drew Gaussians (it has been
presented), fully loaded = the same once every Gaussian is in, orbit frame = the median
interval between animation frames while the camera turns 0.5° per frame about the pivot.
The peers show nothing before their whole file has arrived and been parsed, so for them the
first frame is also the loaded one. WebGL2 here is SwiftShader (software), shared by the
team's processes on 2 cores: figures are for comparison within one run, not absolute.
"""

from __future__ import annotations

import http.server
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import REPO, SHARP_GAUSSIANS, Figure

PEERS = {"three": "0.187.0", "@sparkjsdev/spark": "2.2.0", "gsplat": "1.2.9"}
PHOTO = (1536, 768)
F_PX = 1200.0
CANVAS = (1024, 512)
ORBIT_FRAMES = 8

_IMPORTS = {
    "three": "/node_modules/three/build/three.module.js",
    "three/addons/": "/node_modules/three/examples/jsm/",
    "@sparkjsdev/spark": "/node_modules/@sparkjsdev/spark/dist/spark.module.js",
    "gsplat": "/node_modules/gsplat/dist/index.es.js",
}

# Both peer pages read {url, fy, depth} from the query; each defines render(), gl, ready (a
# promise: the file is in) and turn(radians), and the shared loop below renders every animation
# frame, as a viewer does. The first frame is the first one whose pixels are not all black
# (read back while the peers show nothing: a few ms per frame, against seconds to load).
# Hook as ours: window.bench = {loaded: Promise<{firstFrameMs, loadedMs}>, orbit(n): Promise<t[]>}.
_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<style>html,body{margin:0;height:100%;background:#000;overflow:hidden}canvas{display:block;width:100%;height:100%}</style>
<script type="importmap">{"imports": IMPORTS}</script>
<script type="module">
const P = Object.fromEntries(new URLSearchParams(location.search));
const fy = Number(P.fy), depth = Number(P.depth);
BODY
let loadedAt = null, seen = false, orbit = null, resolveShown;
const shown = new Promise((r) => { resolveShown = r; });
ready.then(() => { loadedAt = performance.now(); });
function drawn() {
  const w = gl.drawingBufferWidth, h = gl.drawingBufferHeight, px = new Uint8Array(w * h * 4);
  gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
  for (let i = 0; i < px.length; i += 4) if (px[i] > 8 || px[i + 1] > 8 || px[i + 2] > 8) return true;
  return false;
}
function loop(t) {
  if (orbit) {
    orbit.times.push(t);
    if (orbit.times.length > orbit.n) { orbit.done(orbit.times); orbit = null; }
    else turn(orbit.times.length * 0.5 * Math.PI / 180);
  }
  render();
  if (loadedAt !== null && !seen && drawn()) {
    seen = true;
    requestAnimationFrame(() => resolveShown(performance.now()));
  }
  requestAnimationFrame(loop);
}
requestAnimationFrame(loop);
window.bench = {
  loaded: shown.then((ms) => ({ firstFrameMs: ms, loadedMs: ms, fileInMs: loadedAt })),
  orbit: (n) => new Promise((done) => { orbit = { n, times: [], done }; }),
};
</script></head><body></body></html>
"""

# three.js looks down -z with y up; the OpenCV scene is turned by 180° about x (Spark's own
# example does the same), so the camera at the origin sees the photo's view.
_SPARK = """
import * as THREE from "three";
import { SparkRenderer, SplatMesh } from "@sparkjsdev/spark";
const renderer = new THREE.WebGLRenderer({ antialias: false });
renderer.setSize(innerWidth, innerHeight);
document.body.appendChild(renderer.domElement);
const gl = renderer.getContext();
const scene = new THREE.Scene();
const camera = new THREE.PerspectiveCamera(2 * Math.atan(innerHeight / 2 / fy) * 180 / Math.PI,
  innerWidth / innerHeight, 0.01, 1000);
scene.add(new SparkRenderer({ renderer }));
const mesh = new SplatMesh({ url: P.url });
mesh.quaternion.set(1, 0, 0, 0);
scene.add(mesh);
const ready = mesh.initialized;
const render = () => renderer.render(scene, camera);
const turn = (a) => {
  camera.position.set(-depth * Math.sin(a), 0, -depth + depth * Math.cos(a));
  camera.lookAt(0, 0, -depth);
};
"""

# gsplat.js keeps the .splat's own (OpenCV) axes: identity rotation at the origin is the photo's view.
_GSPLAT = """
import * as SPLAT from "gsplat";
const renderer = new SPLAT.WebGLRenderer();
renderer.setSize(innerWidth, innerHeight);
const gl = renderer.gl;
const scene = new SPLAT.Scene();
const camera = new SPLAT.Camera();
camera.data.fx = fy; camera.data.fy = fy;
camera.position = new SPLAT.Vector3(0, 0, 0);
camera.rotation = new SPLAT.Quaternion(0, 0, 0, 1);
const ready = SPLAT.Loader.LoadAsync(P.url, scene, () => {});
const render = () => renderer.render(scene, camera);
const turn = (a) => {
  camera.position = new SPLAT.Vector3(-depth * Math.sin(a), 0, depth - depth * Math.cos(a));
  camera.rotation = SPLAT.Quaternion.FromEuler(new SPLAT.Vector3(0, a, 0));
};
"""

_OURS_ORBIT = """(n) => new Promise((resolve) => {
  const times = [];
  const tick = (t) => {
    times.push(t);
    if (times.length > n) return resolve(times);
    window.sharpmldViewer.orbit(0.5);
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scene(folder: Path, count: int) -> tuple[Path, float]:
    """A done job holding ``shot.splat`` of ``count`` Gaussians; its root and median depth."""
    import numpy as np

    from sharpmld.formats.ply import to_vertex_records
    from sharpmld.formats.registry import FORMATS, WriteOptions
    from sharpmld.queue.layout import RESULT_FILE, Layout
    from tests.support import roots
    from tests.worker.test_preview import natural_image, one_per_pixel

    width = PHOTO[0] if count == SHARP_GAUSSIANS else int((count * 2) ** 0.5)
    height = count // width
    g, meta = one_per_pixel(natural_image(width, height), f_px=F_PX * width / PHOTO[0])
    root = folder / "root"
    Layout(root).ensure()
    job = roots.finished_job(Layout(root), "bench", {"input/shot.png": b"png"})
    FORMATS["splat"].write(job / "shot.splat", to_vertex_records(g), meta, WriteOptions())
    result = json.loads((job / RESULT_FILE).read_text())
    facts = {"width": meta.width, "height": meta.height, "f_px": meta.f_px}
    result["images"] = [{"source": "shot.png", **facts, "outputs": {"splat": {"path": "shot.splat"}}}]
    (job / RESULT_FILE).write_text(json.dumps(result))
    return job, float(np.median(g.means[:, 2]))


def _install_peers(folder: Path) -> None:
    (folder / "package.json").write_text('{"private": true}\n')
    subprocess.run(
        ["npm", "install", "--no-save", "--no-audit", "--no-fund", *(f"{n}@{v}" for n, v in PEERS.items())],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=600,
    )
    imports = json.dumps(_IMPORTS)
    for name, body in (("spark", _SPARK), ("gsplat", _GSPLAT)):
        (folder / f"{name}.html").write_text(_PAGE.replace("IMPORTS", imports).replace("BODY", body))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """The peers' files (``.js`` is text/javascript in this Python's table), without a log line each."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _static(folder: Path) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Quiet(*a, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _serve(root: Path) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sharpmld", "serve", "--root", str(root), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=root.parent,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("sharpmld serve did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _median_interval(times: list[float]) -> float:
    return float(statistics.median(b - a for a, b in itertools.pairwise(times)))


def _measure(browser: Any, url: str, ours: bool, frames: int) -> dict[str, float]:
    width, height = CANVAS
    page = browser.new_page(viewport={"width": width, "height": height + (40 if ours else 0)})
    try:
        page.set_default_timeout(600_000)
        page.goto(url)
        if ours:
            page.evaluate("() => window.sharpmldViewer.loaded")
            info = page.evaluate("() => window.sharpmldViewer.info()")
            assert (info["width"], info["height"]) == CANVAS, info
            times = page.evaluate(_OURS_ORBIT, frames)
            first, loaded = float(info["firstFrameMs"]), float(info["loadedMs"])
        else:
            marks = page.evaluate("() => window.bench.loaded")
            times = page.evaluate("(n) => window.bench.orbit(n)", frames)
            first, loaded = float(marks["firstFrameMs"]), float(marks["loadedMs"])
        return {"first_frame_ms": first, "loaded_ms": loaded, "orbit_frame_ms": _median_interval(times)}
    finally:
        page.close()


def run(quick: bool) -> list[Figure]:
    from playwright.sync_api import sync_playwright

    from tests.support.browser import CHROMIUM, SOFTWARE_GL

    if CHROMIUM is None or shutil.which("npm") is None:
        raise RuntimeError("the viewer bench needs the system Chromium and npm")
    count = 1 << 16 if quick else SHARP_GAUSSIANS
    frames = 5 if quick else ORBIT_FRAMES
    with tempfile.TemporaryDirectory(prefix="sharpmld-viewer-bench-") as tmp:
        folder = Path(tmp)
        job, depth = _scene(folder, count)
        peers = folder / "peers"
        peers.mkdir()
        _install_peers(peers)
        shutil.copyfile(job / "shot.splat", peers / "shot.splat")
        query = urllib.parse.urlencode(
            {"url": "/shot.splat", "fy": F_PX * CANVAS[1] / PHOTO[1], "depth": depth}
        )
        measured: dict[str, dict[str, float]] = {}
        with _serve(job.parents[1]) as ours, _static(peers) as static, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(SOFTWARE_GL))
            try:
                pages = {"sharpmld": f"{ours}/view/{job.name}/shot"}
                pages |= {peer: f"{static}/{peer}.html?{query}" for peer in ("spark", "gsplat")}
                for name, url in pages.items():
                    measured[name] = _measure(browser, url, name == "sharpmld", frames)
                    print(f"[bench] viewer {name}: {measured[name]}", file=sys.stderr, flush=True)
            finally:
                browser.close()
    return _figures(measured, count)


def _figures(measured: dict[str, dict[str, float]], count: int) -> list[Figure]:
    ours = measured["sharpmld"]
    peers = {k: v for k, v in measured.items() if k != "sharpmld"}
    versions = ", ".join(f"{n} {v}" for n, v in PEERS.items())
    side = "; ".join(
        f"{name}: first {m['first_frame_ms']:.0f} ms, loaded {m['loaded_ms']:.0f} ms, "
        f"orbit {m['orbit_frame_ms']:.0f} ms"
        for name, m in measured.items()
    )
    notes = f"{count:,} Gaussians, {CANVAS[0]}×{CANVAS[1]} canvas, SwiftShader; {side} ({versions})"
    out = []
    for key, name, title, factor, target in (
        ("first_frame_ms", "viewer_first_frame", "time to first frame", 1.0, "≤ the faster peer's"),
        ("loaded_ms", "viewer_loaded", "time to fully loaded", None, ""),
        (
            "orbit_frame_ms",
            "viewer_orbit_frame",
            "median frame time while orbiting",
            1.2,
            "≤ 1.2× the faster peer's",
        ),
    ):
        best_name, best = min(((n, m[key]) for n, m in peers.items()), key=lambda item: item[1])
        out.append(
            Figure(
                name=name,
                group="viewer",
                title=title,
                value=ours[key] / 1000,
                unit="s",
                baseline=best / 1000,
                baseline_label=f"{best_name}, the faster peer",
                ratio=best / ours[key] if ours[key] else None,
                target=target,
                passed=None if factor is None else ours[key] <= factor * best,
                notes=notes,
                extra={"measured": measured},
            )
        )
    return out
