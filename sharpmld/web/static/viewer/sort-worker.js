// Depth sort in a Web Worker, so the page never stalls on a million Gaussians.
//
// The page sends the positions as they stream in ("append") and asks for an order for a view
// ("sort": the third row of the world-to-camera transform, since only z matters). The answer
// is the indices of the Gaussians in front of the near plane, nearest first: the renderer
// composites front to back. The key is the float32 bit pattern of z, which orders like z for
// positive values, sorted exactly (and stably) by two 16-bit radix passes; no depth
// quantisation, so the order is the one the CPU preview's sort gives.

const NEAR = 0.01; // the CPU preview's near plane (raster.render_scene)

let positions = new Float32Array(0);
let count = 0;
let median = 0;
let medianStale = true;

function append(start, values) {
  const end = start + values.length / 3;
  if (end * 3 > positions.length) {
    const grown = new Float32Array(Math.max(end * 3, positions.length * 2));
    grown.set(positions.subarray(0, count * 3));
    positions = grown;
  }
  positions.set(values, start * 3);
  count = Math.max(count, end);
  medianStale = true;
}

function reserve(total) {
  if (total * 3 > positions.length) {
    const grown = new Float32Array(total * 3);
    grown.set(positions.subarray(0, count * 3));
    positions = grown;
  }
}

/** The median z of the Gaussians in front of the photo's camera (from at most 2^18 of them). */
function medianDepth() {
  const step = Math.max(1, Math.floor(count / (1 << 18)));
  const zs = [];
  for (let i = 0; i < count; i += step) {
    const z = positions[i * 3 + 2];
    if (z > 0) zs.push(z);
  }
  if (zs.length === 0) return 0;
  const sorted = Float32Array.from(zs).sort();
  return sorted[Math.floor(sorted.length / 2)];
}

let keys = new Uint32Array(0), keysB = new Uint32Array(0);
let ids = new Uint32Array(0), idsB = new Uint32Array(0);
const counts = new Uint32Array(65536);
const zBits = new Float32Array(1);
const zWord = new Uint32Array(zBits.buffer);

function sort(r0, r1, r2, t) {
  if (keys.length < count) {
    keys = new Uint32Array(count); keysB = new Uint32Array(count);
    ids = new Uint32Array(count); idsB = new Uint32Array(count);
  }
  let n = 0;
  const p = positions;
  for (let i = 0; i < count; i++) {
    const z = r0 * p[3 * i] + r1 * p[3 * i + 1] + r2 * p[3 * i + 2] + t;
    if (z > NEAR) {
      zBits[0] = z;
      keys[n] = zWord[0];
      ids[n] = i;
      n++;
    }
  }
  // Two stable counting passes: low 16 bits, then high 16 bits.
  let srcK = keys, srcI = ids, dstK = keysB, dstI = idsB;
  for (let shift = 0; shift < 32; shift += 16) {
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[(srcK[i] >>> shift) & 0xffff]++;
    let sum = 0;
    for (let b = 0; b < 65536; b++) { const c = counts[b]; counts[b] = sum; sum += c; }
    for (let i = 0; i < n; i++) {
      const at = counts[(srcK[i] >>> shift) & 0xffff]++;
      dstK[at] = srcK[i];
      dstI[at] = srcI[i];
    }
    [srcK, dstK] = [dstK, srcK];
    [srcI, dstI] = [dstI, srcI];
  }
  return srcI.slice(0, n);
}

self.onmessage = (event) => {
  const m = event.data;
  if (m.type === "reserve") {
    reserve(m.total);
  } else if (m.type === "append") {
    append(m.start, m.positions);
  } else if (m.type === "sort") {
    if (medianStale) { median = medianDepth(); medianStale = false; }
    const started = performance.now();
    const order = sort(m.row[0], m.row[1], m.row[2], m.row[3]);
    self.postMessage(
      { type: "order", id: m.id, order, loaded: count, median, ms: performance.now() - started },
      [order.buffer],
    );
  }
};
