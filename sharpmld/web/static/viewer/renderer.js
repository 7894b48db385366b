// WebGL2 drawing of Gaussians as oriented 2D ellipses: the EWA maths of the CPU preview
// (sharpmld/worker/preview/raster.py), term for term, so the two agree pixel for pixel.
//
// * The .splat records go to the GPU untouched: a 32-byte record is two RGBA32UI texels
//   (x, y, z, sx | sy, sz, rgba, rotation), so a streamed chunk is one texSubImage2D.
// * Per Gaussian (vertex shader): Σ = R diag(s²) Rᵀ from the quaternion, Σ' = J W Σ Wᵀ Jᵀ +
//   0.3 px² with x/z, y/z clamped to 1.3× the field of view, a box of ±reach·σ on each screen
//   axis (reach = min(3, sqrt(2 ln(255 · 0.99 · opacity)))), drawn as one instanced quad.
// * Per pixel (fragment shader): α = min(0.99, opacity · exp(-½ dᵀ Σ'⁻¹ d)), dropped below
//   1/255, composited front to back (the worker's order is nearest first) in *linear* light
//   into a float target: dst += (1 - dst.a) · (α c, α). A last pass adds the background and
//   encodes sRGB, as the CPU preview does with the same curves.

const TEX_WIDTH = 2048; // texels per row: 1024 Gaussians
export const PER_ROW = TEX_WIDTH / 2;

const SPLAT_VS = `#version 300 es
precision highp float;
precision highp int;
precision highp usampler2D;
uniform usampler2D u_data;
uniform mat3 u_rot;      // world to camera (column-major)
uniform vec3 u_trans;
uniform vec4 u_intr;     // fx, fy, cx, cy
uniform vec2 u_size;     // width, height in pixels
uniform vec2 u_lim;      // clamp of x/z and y/z for the Jacobian
in vec2 a_corner;
in uint a_index;
out vec2 v_d;
flat out vec3 v_conic;
flat out vec4 v_color;

void main() {
  ivec2 at = ivec2(int(a_index & 1023u) * 2, int(a_index >> 10u));
  uvec4 t0 = texelFetch(u_data, at, 0);
  uvec4 t1 = texelFetch(u_data, at + ivec2(1, 0), 0);
  vec3 mean = uintBitsToFloat(t0.xyz);
  vec3 s = vec3(uintBitsToFloat(t0.w), uintBitsToFloat(t1.x), uintBitsToFloat(t1.y));
  uvec4 c8 = uvec4(t1.z & 255u, (t1.z >> 8u) & 255u, (t1.z >> 16u) & 255u, t1.z >> 24u);
  uvec4 q8 = uvec4(t1.w & 255u, (t1.w >> 8u) & 255u, (t1.w >> 16u) & 255u, t1.w >> 24u);
  float opacity = float(c8.a) / 255.0;
  vec3 p = u_rot * mean + u_trans;
  gl_Position = vec4(0.0, 0.0, 2.0, 1.0);  // outside the clip volume: nothing drawn
  if (!(p.z > 0.01) || opacity < 1.0 / 255.0) return;

  // Quaternion (w, x, y, z) of any norm -> rotation; all-zero bytes-as-128 give identity.
  vec4 q = (vec4(q8) - 128.0) / 128.0;
  float n2 = dot(q, q);
  float k = 2.0 / max(n2, 1e-30);
  float w = q.x, x = q.y, y = q.z, z = q.w;
  float xx = k * x * x, yy = k * y * y, zz = k * z * z;
  float xy = k * x * y, xz = k * x * z, yz = k * y * z;
  float wx = k * x * w, wy = k * y * w, wz = k * z * w;
  mat3 R = mat3(1.0 - yy - zz, xy + wz, xz - wy,    // column 0
                xy - wz, 1.0 - xx - zz, yz + wx,    // column 1
                xz + wy, yz - wx, 1.0 - xx - yy);   // column 2
  mat3 M = R * mat3(s.x * s.x, 0.0, 0.0, 0.0, s.y * s.y, 0.0, 0.0, 0.0, s.z * s.z);
  mat3 sigma = M * transpose(R);

  float iz = 1.0 / p.z;
  vec2 pz = p.xy * iz;
  vec2 uv = pz * u_intr.xy + u_intr.zw;
  vec2 kk = clamp(pz, -u_lim, u_lim);
  mat3 W = transpose(u_rot);  // rows of u_rot as columns: W[j] = row j of the rotation
  vec3 t0r = u_intr.x * iz * (W[0] - kk.x * W[2]);
  vec3 t1r = u_intr.y * iz * (W[1] - kk.y * W[2]);
  vec3 st0 = sigma * t0r, st1 = sigma * t1r;
  float a = dot(t0r, st0) + 0.3;
  float b = dot(t1r, st0);
  float c = dot(t1r, st1) + 0.3;
  float reach = min(3.0, sqrt(2.0 * log(max(opacity * (0.99 * 255.0), 1.0))));
  vec2 r = reach * sqrt(vec2(a, c));
  if (!(r.x > 0.0) || !(r.y > 0.0) || isinf(r.x) || isinf(r.y)) return;
  float invDet = 1.0 / max(a * c - b * b, 1e-12);
  v_conic = vec3(-0.5 * c * invDet, b * invDet, -0.5 * a * invDet);
  v_d = a_corner * r;
  vec2 px = uv + v_d;
  gl_Position = vec4(2.0 * px.x / u_size.x - 1.0, 1.0 - 2.0 * px.y / u_size.y, 0.0, 1.0);
  vec3 srgb = vec3(c8.rgb) / 255.0;
  vec3 lin = mix(srgb / 12.92, pow((srgb + 0.055) / 1.055, vec3(2.4)), greaterThan(srgb, vec3(0.04045)));
  v_color = vec4(lin, opacity);
}
`;

const SPLAT_FS = `#version 300 es
precision highp float;
in vec2 v_d;
flat in vec3 v_conic;
flat in vec4 v_color;
out vec4 outColor;
void main() {
  float power = v_conic.x * v_d.x * v_d.x + v_conic.y * v_d.x * v_d.y + v_conic.z * v_d.y * v_d.y;
  float alpha = min(0.99, v_color.a * exp(power));
  if (alpha < 1.0 / 255.0) discard;
  outColor = vec4(v_color.rgb * alpha, alpha);
}
`;

const SHOW_VS = `#version 300 es
void main() {
  vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
  gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}
`;

const SHOW_FS = `#version 300 es
precision highp float;
uniform sampler2D u_accum;
uniform vec3 u_background;  // linear
out vec4 outColor;
void main() {
  vec4 acc = texelFetch(u_accum, ivec2(gl_FragCoord.xy), 0);
  vec3 lin = clamp(acc.rgb + (1.0 - acc.a) * u_background, 0.0, 1.0);
  vec3 srgb = mix(lin * 12.92, 1.055 * pow(max(lin, vec3(0.0031308)), vec3(1.0 / 2.4)) - 0.055,
                  greaterThan(lin, vec3(0.0031308)));
  outColor = vec4(srgb, 1.0);
}
`;

function compile(gl, vs, fs) {
  const program = gl.createProgram();
  for (const [kind, text] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]]) {
    const shader = gl.createShader(kind);
    gl.shaderSource(shader, text);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
      throw new Error("shader: " + gl.getShaderInfoLog(shader));
    }
    gl.attachShader(program, shader);
  }
  gl.linkProgram(program);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error("link: " + gl.getProgramInfoLog(program));
  return program;
}

function uniforms(gl, program, names) {
  const out = {};
  for (const n of names) out[n] = gl.getUniformLocation(program, n);
  return out;
}

/** The best float target this browser can blend into: 32-bit, else 16-bit, else 8-bit. */
function accumFormat(gl) {
  const floatTarget = gl.getExtension("EXT_color_buffer_float");
  if (floatTarget && gl.getExtension("EXT_float_blend")) return { internal: gl.RGBA32F, type: gl.FLOAT, name: "rgba32f" };
  if (floatTarget || gl.getExtension("EXT_color_buffer_half_float")) {
    return { internal: gl.RGBA16F, type: gl.HALF_FLOAT, name: "rgba16f" };
  }
  return { internal: gl.RGBA8, type: gl.UNSIGNED_BYTE, name: "rgba8" };
}

export class SplatRenderer {
  constructor(canvas) {
    const gl = canvas.getContext("webgl2", { antialias: false, alpha: false, depth: false, stencil: false });
    if (!gl) throw new Error("this browser has no WebGL2");
    this.gl = gl;
    this.canvas = canvas;
    this.format = accumFormat(gl);
    this.splat = compile(gl, SPLAT_VS, SPLAT_FS);
    this.show = compile(gl, SHOW_VS, SHOW_FS);
    this.u = uniforms(gl, this.splat, ["u_data", "u_rot", "u_trans", "u_intr", "u_size", "u_lim"]);
    this.uShow = uniforms(gl, this.show, ["u_accum", "u_background"]);
    this.capacity = 0;
    this.drawCount = 0;
    this.data = null;
    this.accum = null;
    this.fbo = null;
    this.width = 0;
    this.height = 0;

    this.vao = gl.createVertexArray();
    gl.bindVertexArray(this.vao);
    const corners = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, corners);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const aCorner = gl.getAttribLocation(this.splat, "a_corner");
    gl.enableVertexAttribArray(aCorner);
    gl.vertexAttribPointer(aCorner, 2, gl.FLOAT, false, 0, 0);
    this.orderBuffer = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, this.orderBuffer);
    const aIndex = gl.getAttribLocation(this.splat, "a_index");
    gl.enableVertexAttribArray(aIndex);
    gl.vertexAttribIPointer(aIndex, 1, gl.UNSIGNED_INT, 0, 0);
    gl.vertexAttribDivisor(aIndex, 1);
    gl.bindVertexArray(null);
    this.emptyVao = gl.createVertexArray();
  }

  /** Room for `total` Gaussians (the texture is made once, its rows filled as data arrives). */
  reserve(total) {
    const gl = this.gl;
    const rows = Math.max(1, Math.ceil(total / PER_ROW));
    if (rows > gl.getParameter(gl.MAX_TEXTURE_SIZE)) throw new Error(`${total} Gaussians do not fit in one texture here`);
    this.data = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, this.data);
    gl.texStorage2D(gl.TEXTURE_2D, 1, gl.RGBA32UI, TEX_WIDTH, rows);
    for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
    this.capacity = rows * PER_ROW;
  }

  /** Upload records [start, end) from `words` (the .splat bytes as 32-bit words, 8 per record). */
  upload(words, start, end) {
    const gl = this.gl;
    gl.bindTexture(gl.TEXTURE_2D, this.data);
    let i = start;
    while (i < end) {
      const row = Math.floor(i / PER_ROW);
      const col = i % PER_ROW;
      // Either the rest of a partly filled row, or as many whole rows as are complete.
      let n;
      let height = 1;
      if (col !== 0 || end - i < PER_ROW) {
        n = Math.min(PER_ROW - col, end - i);
      } else {
        height = Math.floor((end - i) / PER_ROW);
        n = height * PER_ROW;
      }
      const width = height === 1 ? n * 2 : TEX_WIDTH;
      gl.texSubImage2D(gl.TEXTURE_2D, 0, col * 2, row, width, height, gl.RGBA_INTEGER, gl.UNSIGNED_INT,
        words.subarray(i * 8, (i + n) * 8));
      i += n;
    }
  }

  /** The draw order from the sort worker: nearest first. */
  setOrder(order) {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.orderBuffer);
    gl.bufferData(gl.ARRAY_BUFFER, order, gl.DYNAMIC_DRAW);
    this.drawCount = order.length;
  }

  resize(width, height) {
    if (width === this.width && height === this.height && this.accum) return;
    const gl = this.gl;
    this.width = width;
    this.height = height;
    if (this.accum) gl.deleteTexture(this.accum);
    if (this.fbo) gl.deleteFramebuffer(this.fbo);
    this.accum = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, this.accum);
    gl.texStorage2D(gl.TEXTURE_2D, 1, this.format.internal, width, height);
    for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
    this.fbo = gl.createFramebuffer();
    gl.bindFramebuffer(gl.FRAMEBUFFER, this.fbo);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, this.accum, 0);
    if (gl.checkFramebufferStatus(gl.FRAMEBUFFER) !== gl.FRAMEBUFFER_COMPLETE) {
      throw new Error(`cannot render into ${this.format.name} here`);
    }
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
  }

  /** One frame: `view` = {rows, t} world-to-camera, `intr` = {fx, fy, cx, cy}. */
  draw(view, intr, backgroundLinear = [0, 0, 0]) {
    const gl = this.gl;
    const { width, height } = this;
    gl.bindFramebuffer(gl.FRAMEBUFFER, this.fbo);
    gl.viewport(0, 0, width, height);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (this.drawCount > 0 && this.data) {
      gl.useProgram(this.splat);
      const r = view.rows;
      // Column-major: column j holds (r[0][j], r[1][j], r[2][j]).
      gl.uniformMatrix3fv(this.u.u_rot, false, [r[0][0], r[1][0], r[2][0], r[0][1], r[1][1], r[2][1], r[0][2], r[1][2], r[2][2]]);
      gl.uniform3fv(this.u.u_trans, view.t);
      gl.uniform4f(this.u.u_intr, intr.fx, intr.fy, intr.cx, intr.cy);
      gl.uniform2f(this.u.u_size, width, height);
      gl.uniform2f(this.u.u_lim, (1.3 * Math.max(intr.cx, width - intr.cx)) / intr.fx,
        (1.3 * Math.max(intr.cy, height - intr.cy)) / intr.fy);
      gl.activeTexture(gl.TEXTURE0);
      gl.bindTexture(gl.TEXTURE_2D, this.data);
      gl.uniform1i(this.u.u_data, 0);
      gl.enable(gl.BLEND);
      gl.blendEquation(gl.FUNC_ADD);
      gl.blendFuncSeparate(gl.ONE_MINUS_DST_ALPHA, gl.ONE, gl.ONE_MINUS_DST_ALPHA, gl.ONE);
      gl.bindVertexArray(this.vao);
      gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, this.drawCount);
      gl.bindVertexArray(null);
      gl.disable(gl.BLEND);
    }
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    gl.viewport(0, 0, width, height);
    gl.useProgram(this.show);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.accum);
    gl.uniform1i(this.uShow.u_accum, 0);
    gl.uniform3fv(this.uShow.u_background, backgroundLinear);
    gl.bindVertexArray(this.emptyVao);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    gl.bindVertexArray(null);
  }
}
