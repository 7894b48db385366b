// The viewer page: streams one photo's splats, sorts them in a worker, draws from the photo's
// own camera first, and follows the person's orbit, pan and zoom.
//
// Formats: .splat and .ply (3DGS binary) are both read, progressively (see loader.js).
// .spz is not: it is gzip over column-wise quantised fields, so it cannot be drawn until the
// whole file has arrived and been inflated (DecompressionStream streams bytes, but the
// columns come one after another), and our .splat of the same photo is already the
// smaller-to-draw stream; .spz stays a download for tools that want it.
//
// For tests and benchmarks the page exposes `window.sharpmldViewer`: `loaded` (a promise),
// `orbit(yawDeg, pitchDeg)`, `pan(dx, dy)`, `zoom(f)`, `reset()` (each resolving once a frame
// with a finished sort for the new view is on screen), `settled()` (the same after a person's
// input) and `info()`.

import { OrbitCamera, intrinsics } from "./camera.js";
import { attachControls } from "./controls.js";
import { streamScene } from "./loader.js";
import { SplatRenderer } from "./renderer.js";

const DEG = Math.PI / 180;

class Viewer {
  constructor(canvas, scene, ui) {
    this.canvas = canvas;
    this.scene = scene;
    this.ui = ui;
    this.renderer = new SplatRenderer(canvas);
    this.camera = new OrbitCamera();
    this.worker = new Worker(new URL("./sort-worker.js", import.meta.url), { type: "module" });
    this.worker.onmessage = (e) => this.onOrder(e.data);
    this.viewId = 0;       // bumped by every camera change
    this.dataVersion = 0;  // bumped by every appended chunk
    this.sorting = false;
    this.sorted = { view: -1, data: -1 };
    this.total = 0;
    this.loadedCount = 0;
    this.chunks = 0;        // record batches handed on while streaming
    this.complete = false;
    this.dirty = true;
    this.waiters = [];
    this.firstFrameMs = null;
    this.loadedMs = null;
    this.frameMs = [];
    this.lastFrame = null;
    new ResizeObserver(() => this.fit()).observe(canvas);
    this.fit();
    requestAnimationFrame((t) => this.frame(t));
  }

  fit() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(this.canvas.clientWidth * dpr));
    const h = Math.max(1, Math.round(this.canvas.clientHeight * dpr));
    this.canvas.width = w;
    this.canvas.height = h;
    this.renderer.resize(w, h);
    // Without camera facts (an old result.json): a 60° horizontal field of view.
    const photo = this.scene.camera || { width: w, height: h, f_px: w / (2 * Math.tan(30 * DEG)) };
    this.intr = intrinsics(photo, w, h);
    this.dirty = true;
  }

  async load() {
    const n = await streamScene(this.scene.url, this.scene.kind, {
      onTotal: (total) => {
        this.total = total;
        this.renderer.reserve(total);
        this.worker.postMessage({ type: "reserve", total });
      },
      onRecords: (words, start, end) => this.append(words, start, end),
      onBytes: (received, length) => this.progress(received, length),
    });
    this.complete = true;
    this.total = n;
    this.requestSort();
    await this.settled();
    this.loadedMs = performance.now();
    this.ui.progress.value = 1;
    this.ui.status.textContent = `${n.toLocaleString("en")} Gaussians`;
    this.ui.progress.hidden = true;
  }

  append(words, start, end) {
    this.renderer.upload(words, start, end);
    const f = new Float32Array(words.buffer, words.byteOffset, words.length);
    const positions = new Float32Array((end - start) * 3);
    for (let i = start, j = 0; i < end; i++, j += 3) {
      positions[j] = f[i * 8];
      positions[j + 1] = f[i * 8 + 1];
      positions[j + 2] = f[i * 8 + 2];
    }
    this.worker.postMessage({ type: "append", start, positions }, [positions.buffer]);
    this.loadedCount = end;
    this.chunks++;
    this.dataVersion++;
    this.requestSort();
  }

  progress(received, length) {
    if (length) this.ui.progress.value = received / length;
    const shown = this.loadedCount.toLocaleString("en");
    this.ui.status.textContent = this.total
      ? `Loading ${shown} of ${this.total.toLocaleString("en")} Gaussians`
      : `Loading ${(received / 1e6).toFixed(1)} MB`;
  }

  requestSort() {
    if (this.sorting) return;
    if (this.sorted.view === this.viewId && this.sorted.data === this.dataVersion) return;
    const { rows, t } = this.camera.view();
    this.sorting = true;
    this.worker.postMessage({
      type: "sort", id: { view: this.viewId, data: this.dataVersion }, row: [...rows[2], t[2]],
    });
  }

  onOrder(m) {
    this.sorting = false;
    this.renderer.setOrder(m.order);
    this.sorted = m.id;
    if (m.median > 0 && m.median !== this.camera.homeDepth && !this.camera.touched) {
      this.camera.setHomeDepth(m.median);
    }
    this.dirty = true;
    this.requestSort();
  }

  frame(t) {
    if (this.lastFrame !== null && this.dirty) this.frameMs.push(t - this.lastFrame);
    this.lastFrame = this.dirty ? t : null;
    if (this.dirty) {
      this.dirty = false;
      this.renderer.draw(this.camera.view(), this.intr);
      if (this.firstFrameMs === null && this.renderer.drawCount > 0) {
        // Since navigation start, taken at the next animation frame: once it was presented.
        this.firstFrameMs = -1;
        requestAnimationFrame(() => { this.firstFrameMs = performance.now(); });
      }
      if (this.isSettled()) {
        const waiting = this.waiters;
        this.waiters = [];
        // Resolve after the compositor has had the frame: the next animation frame.
        requestAnimationFrame(() => waiting.forEach((w) => w()));
      }
    }
    requestAnimationFrame((next) => this.frame(next));
  }

  isSettled() {
    return this.complete && !this.sorting && this.sorted.view === this.viewId
      && this.sorted.data === this.dataVersion;
  }

  /** Resolves once a frame for the current view, with everything loaded and sorted, is shown. */
  settled() {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.dirty = true;
    });
  }

  changed() {
    this.viewId++;
    this.dirty = true;
    this.requestSort();
  }

  orbitRadians(yaw, pitch) { this.camera.orbit(yaw, pitch); this.changed(); }
  pan(dx, dy) { this.camera.pan(dx, dy, this.intr.fx); this.changed(); }
  zoom(factor) { this.camera.zoom(factor); this.changed(); }
  reset() { this.camera.reset(); this.changed(); }
}

function start() {
  const scene = JSON.parse(document.getElementById("scene").textContent);
  const ui = { progress: document.getElementById("progress"), status: document.getElementById("status") };
  const canvas = document.getElementById("view");
  let viewer;
  try {
    viewer = new Viewer(canvas, scene, ui);
  } catch (err) {
    ui.status.textContent = `The viewer cannot start: ${err.message}`;
    window.sharpmldViewer = { loaded: Promise.reject(err) };
    return;
  }
  attachControls(canvas, viewer);
  document.getElementById("reset").addEventListener("click", () => viewer.reset());
  const loaded = viewer.load().catch((err) => {
    ui.status.textContent = `The scene could not be loaded: ${err.message}`;
    throw err;
  });
  const after = (act) => (...args) => { act(...args); return viewer.settled(); };
  window.sharpmldViewer = {
    loaded,
    orbit: after((yawDeg, pitchDeg = 0) => viewer.orbitRadians(yawDeg * DEG, pitchDeg * DEG)),
    pan: after((dx, dy) => viewer.pan(dx, dy)),
    zoom: after((f) => viewer.zoom(f)),
    reset: after(() => viewer.reset()),
    settled: () => viewer.settled(),
    info: () => ({
      total: viewer.total,
      loaded: viewer.loadedCount,
      chunks: viewer.chunks,
      drawn: viewer.renderer.drawCount,
      target: viewer.renderer.format.name,
      width: viewer.canvas.width,
      height: viewer.canvas.height,
      intrinsics: viewer.intr,
      pivot: viewer.camera.pivot.slice(),
      yaw: viewer.camera.yaw,
      pitch: viewer.camera.pitch,
      distance: viewer.camera.distance,
      firstFrameMs: viewer.firstFrameMs,
      loadedMs: viewer.loadedMs,
      frameMs: viewer.frameMs.slice(),
    }),
  };
}

start();
