// Reading a 3DGS .ply in the browser: the header, then vertex rows turned into .splat records.
//
// Only what the vertex element needs is read: the properties x y z f_dc_0..2 opacity
// scale_0..2 rot_0..3 as float32, in whatever order the header lists them, vertex element
// first. Elements after it (ml-sharp's camera metadata) are never reached. The encoding to
// bytes is the one sharpmld/formats/splat.py documents, so a .ply and its .splat draw alike.

const SH_C0 = 0.28209479177387814;
const NEEDED = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
  "rot_0", "rot_1", "rot_2", "rot_3"];
const SIZES = { char: 1, uchar: 1, int8: 1, uint8: 1, short: 2, ushort: 2, int16: 2, uint16: 2, int: 4,
  uint: 4, int32: 4, uint32: 4, float: 4, float32: 4, double: 8, float64: 8 };

/** The header of `bytes` once it is complete: {vertices, stride, offset, at: {name: byte}}, or
 *  null while it is still arriving. Throws for anything but binary little-endian 3DGS. */
export function parsePlyHeader(bytes) {
  const limit = Math.min(bytes.length, 1 << 16);
  const text = new TextDecoder("latin1").decode(bytes.subarray(0, limit));
  const end = text.indexOf("end_header\n");
  if (end < 0) {
    if (limit === 1 << 16 || (bytes.length >= 3 && !text.startsWith("ply"))) throw new Error("not a .ply file");
    return null;
  }
  const lines = text.slice(0, end).split("\n").map((l) => l.trim());
  if (lines[0] !== "ply") throw new Error("not a .ply file");
  if (!lines.includes("format binary_little_endian 1.0")) throw new Error("only binary little-endian .ply is read here");
  let element = null;
  let vertices = 0;
  let stride = 0;
  const at = {};
  for (const line of lines) {
    const words = line.split(/\s+/);
    if (words[0] === "element") {
      if (element === "vertex") break;
      element = words[1];
      if (element !== "vertex") throw new Error("the vertex element must come first in the .ply");
      vertices = Number(words[2]);
    } else if (words[0] === "property" && element === "vertex") {
      if (words[1] === "list" || !(words[1] in SIZES)) throw new Error(`unexpected vertex property: ${line}`);
      if (NEEDED.includes(words[2])) {
        if (SIZES[words[1]] !== 4 || !words[1].startsWith("float")) throw new Error(`${words[2]} must be float32`);
        at[words[2]] = stride;
      }
      stride += SIZES[words[1]];
    }
  }
  const missing = NEEDED.filter((n) => !(n in at));
  if (missing.length) throw new Error(`the .ply lacks ${missing.join(", ")}`);
  if (!Number.isInteger(vertices) || vertices < 0) throw new Error("the .ply's vertex count is not a count");
  return { vertices, stride, offset: end + "end_header\n".length, at };
}

const clampByte = (v) => (v >= 255 ? 255 : v > 0 ? Math.floor(v) : 0);

/** Rows [start, end) of the vertex table in `bytes` as .splat records into `out` (Uint32). */
export function plyToSplat(bytes, header, start, end, out) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const f = new Float32Array(out.buffer);
  const { at, stride, offset } = header;
  const get = (row, name) => view.getFloat32(offset + row * stride + at[name], true);
  for (let i = start; i < end; i++) {
    const o = i * 8;
    f[o] = get(i, "x");
    f[o + 1] = get(i, "y");
    f[o + 2] = get(i, "z");
    f[o + 3] = Math.exp(get(i, "scale_0"));
    f[o + 4] = Math.exp(get(i, "scale_1"));
    f[o + 5] = Math.exp(get(i, "scale_2"));
    const r = clampByte((0.5 + SH_C0 * get(i, "f_dc_0")) * 255);
    const g = clampByte((0.5 + SH_C0 * get(i, "f_dc_1")) * 255);
    const b = clampByte((0.5 + SH_C0 * get(i, "f_dc_2")) * 255);
    const a = clampByte((1 / (1 + Math.exp(-get(i, "opacity")))) * 255);
    out[o + 6] = (r | (g << 8) | (b << 16) | (a << 24)) >>> 0;
    const q = [get(i, "rot_0"), get(i, "rot_1"), get(i, "rot_2"), get(i, "rot_3")];
    const n = Math.hypot(q[0], q[1], q[2], q[3]) || 1;
    const qb = q.map((c) => clampByte((c / n) * 128 + 128));
    out[o + 7] = (qb[0] | (qb[1] << 8) | (qb[2] << 16) | (qb[3] << 24)) >>> 0;
  }
}
