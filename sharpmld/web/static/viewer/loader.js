// Streaming a scene while it downloads: fetch + ReadableStream, records handed on as they
// complete, so the first Gaussians are on screen long before the last byte arrives.
//
// Both inputs end up as .splat records (32 bytes: position 3×f32, scale 3×f32, RGBA 4×u8,
// rotation 4×u8), the one layout the renderer reads:
// * .splat is passed through as it comes (it is sorted biggest-and-most-opaque first, so a
//   partial download already shows the whole scene coarsely);
// * .ply (3DGS binary little-endian, vertex element first: our "3dgs" and "ml-sharp" layouts
//   both) is converted row by row with the same encoding sharpmld/formats/splat.py uses
//   (colour 0.5 + C0·f_dc and sigmoid opacity to bytes, exp of log-scales, quaternion
//   normalised to 128 ± 128), so both files of one photo look the same.

import { parsePlyHeader, plyToSplat } from "./ply.js";

const RECORD = 32;

/**
 * Stream `url`, calling `onRecords(words, start, end)` each time records [start, end) are
 * complete (`words`: a Uint32Array over all records so far, 8 words each), `onTotal(n)` once
 * the record count is known, and `onBytes(received, total)` for progress. Resolves with the
 * record count.
 */
export async function streamScene(url, kind, { onTotal, onRecords, onBytes }) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`the scene could not be fetched (HTTP ${response.status})`);
  const length = Number(response.headers.get("content-length")) || 0;
  const reader = response.body.getReader();
  const input = kind === "ply" ? new PlyInput(length) : new SplatInput(length);
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    received += value.length;
    const ready = input.push(value, onTotal);
    if (ready) onRecords(ready.words, ready.start, ready.end);
    if (onBytes) onBytes(received, length);
  }
  const ready = input.finish(onTotal);
  if (ready) onRecords(ready.words, ready.start, ready.end);
  return input.count;
}

/** A growable byte buffer (sized once when the server says the length). */
class Bytes {
  constructor(size) {
    this.buf = new Uint8Array(Math.max(size, 1 << 16));
    this.length = 0;
  }

  push(chunk) {
    if (this.length + chunk.length > this.buf.length) {
      const grown = new Uint8Array(Math.max(this.length + chunk.length, this.buf.length * 2));
      grown.set(this.buf.subarray(0, this.length));
      this.buf = grown;
    }
    this.buf.set(chunk, this.length);
    this.length += chunk.length;
  }
}

class SplatInput {
  constructor(length) {
    if (length % RECORD) throw new Error(`${length} bytes is not a whole number of 32-byte splat records`);
    this.bytes = new Bytes(length);
    this.count = 0;
    this.announced = false;
    this.expected = length ? length / RECORD : 0;
  }

  push(chunk, onTotal) {
    this.bytes.push(chunk);
    // Without a length from the server the room cannot be reserved: draw once it is all here.
    if (!this.expected) return null;
    if (!this.announced) { onTotal(this.expected); this.announced = true; }
    return this.take();
  }

  take() {
    const end = Math.floor(this.bytes.length / RECORD);
    if (end <= this.count) return null;
    const start = this.count;
    this.count = end;
    // A fresh view each time: the buffer may have been replaced by a larger one.
    return { words: new Uint32Array(this.bytes.buf.buffer, 0, (this.bytes.buf.length >> 2)), start, end };
  }

  finish(onTotal) {
    if (this.bytes.length % RECORD) throw new Error("the .splat ended inside a record (truncated download?)");
    if (!this.announced) { onTotal(this.bytes.length / RECORD); this.announced = true; }
    return this.take();
  }
}

class PlyInput {
  constructor(length) {
    this.bytes = new Bytes(length);
    this.header = null;
    this.count = 0;
    this.out = null;
  }

  push(chunk, onTotal) {
    this.bytes.push(chunk);
    if (!this.header) {
      this.header = parsePlyHeader(this.bytes.buf.subarray(0, this.bytes.length));
      if (!this.header) return null;
      this.out = new Uint32Array(this.header.vertices * (RECORD / 4));
      onTotal(this.header.vertices);
    }
    return this.take();
  }

  take() {
    const h = this.header;
    const have = Math.min(h.vertices, Math.floor((this.bytes.length - h.offset) / h.stride));
    if (have <= this.count) return null;
    const start = this.count;
    plyToSplat(this.bytes.buf, h, start, have, this.out);
    this.count = have;
    return { words: this.out, start, end: have };
  }

  finish() {
    if (!this.header) throw new Error("not a binary little-endian 3DGS .ply");
    if (this.count < this.header.vertices) throw new Error("the .ply ended before its last Gaussian");
    return null;
  }
}
