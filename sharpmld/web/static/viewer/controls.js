// Mouse, trackpad, touch and keyboard, all turned into orbit / pan / zoom of the camera.
//
// Pointer Events give mouse, pen and touch through one path. One pointer: drag orbits (with
// the right or middle button, or Shift, it pans). Two pointers: the pinch zooms and the
// midpoint pans. The wheel zooms; a trackpad pinch arrives as a wheel event with ctrlKey set
// (the browsers' convention) and zooms too, a two-finger swipe pans. Keys act when the canvas
// has focus: arrows orbit, Shift+arrows pan, + and - zoom, R or 0 resets.

const ORBIT_PER_PIXEL = 0.005; // radians
const KEY_ORBIT = (5 * Math.PI) / 180;
const KEY_PAN = 40; // pixels
const KEY_ZOOM = 1.15;

export function attachControls(canvas, viewer) {
  const pointers = new Map();
  let pinch = null;

  const spread = () => {
    const [a, b] = [...pointers.values()];
    return { d: Math.hypot(a.x - b.x, a.y - b.y), x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
  };

  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    canvas.focus({ preventScroll: true });
    pointers.set(e.pointerId, { x: e.clientX, y: e.clientY, pan: e.button !== 0 || e.shiftKey });
    pinch = pointers.size === 2 ? spread() : null;
  });

  canvas.addEventListener("pointermove", (e) => {
    const p = pointers.get(e.pointerId);
    if (!p) return;
    const scale = window.devicePixelRatio || 1;
    if (pointers.size === 2 && pinch) {
      p.x = e.clientX; p.y = e.clientY;
      const now = spread();
      if (now.d > 0 && pinch.d > 0) viewer.zoom(pinch.d / now.d);
      viewer.pan((now.x - pinch.x) * scale, (now.y - pinch.y) * scale);
      pinch = now;
      return;
    }
    const dx = e.clientX - p.x, dy = e.clientY - p.y;
    p.x = e.clientX; p.y = e.clientY;
    if (p.pan || e.shiftKey) viewer.pan(dx * scale, dy * scale);
    else viewer.orbitRadians(-dx * ORBIT_PER_PIXEL, dy * ORBIT_PER_PIXEL);
  });

  const release = (e) => {
    pointers.delete(e.pointerId);
    pinch = pointers.size === 2 ? spread() : null;
  };
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", release);
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("dblclick", () => viewer.reset());

  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? 400 : 1;
    const scale = window.devicePixelRatio || 1;
    if (e.ctrlKey) viewer.zoom(Math.exp(e.deltaY * unit * 0.01));
    else if (e.deltaX !== 0 && Math.abs(e.deltaX) >= Math.abs(e.deltaY) / 2) {
      viewer.pan(-e.deltaX * unit * scale, -e.deltaY * unit * scale);
    } else viewer.zoom(Math.exp(e.deltaY * unit * 0.002));
  }, { passive: false });

  canvas.addEventListener("keydown", (e) => {
    const pan = e.shiftKey;
    const moves = {
      ArrowLeft: () => (pan ? viewer.pan(KEY_PAN, 0) : viewer.orbitRadians(KEY_ORBIT, 0)),
      ArrowRight: () => (pan ? viewer.pan(-KEY_PAN, 0) : viewer.orbitRadians(-KEY_ORBIT, 0)),
      ArrowUp: () => (pan ? viewer.pan(0, KEY_PAN) : viewer.orbitRadians(0, -KEY_ORBIT)),
      ArrowDown: () => (pan ? viewer.pan(0, -KEY_PAN) : viewer.orbitRadians(0, KEY_ORBIT)),
      "+": () => viewer.zoom(1 / KEY_ZOOM),
      "=": () => viewer.zoom(1 / KEY_ZOOM),
      "-": () => viewer.zoom(KEY_ZOOM),
      r: () => viewer.reset(),
      R: () => viewer.reset(),
      0: () => viewer.reset(),
    };
    const act = moves[e.key];
    if (act) { e.preventDefault(); act(); }
  });
}
