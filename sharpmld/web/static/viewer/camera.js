// The viewer's camera: an orbit around a pivot, in the input camera's own frame.
//
// SHARP writes Gaussians in the OpenCV camera space of the photo (x right, y down, z
// forward), so the world here *is* that space and the input view is the identity: eye at the
// origin, looking down +z, image "down" along +y. Nothing is flipped anywhere, which is what
// keeps the picture upright and unmirrored; the projection is the pinhole of
// sharpmld/worker/preview/camera.py (u = fx x / z + cx, v = fy y / z + cy, v growing down).
//
// The camera-to-world rotation is Ry(yaw) · Rx(pitch) and the eye sits `distance` behind the
// pivot along the view direction: yaw alone moves the eye on a circle about the vertical axis
// through the pivot, keeping image "down" along world +y, exactly as Camera.look_at does in
// the CPU preview (so a test can render the same orbit on the CPU).

const PITCH_LIMIT = (89 * Math.PI) / 180;

export class OrbitCamera {
  constructor() {
    this.homeDepth = 1;
    this.touched = false;
    this.reset();
  }

  /** Back to the photo's own view, pivoting about the median depth of the scene. */
  reset() {
    this.pivot = [0, 0, this.homeDepth];
    this.distance = this.homeDepth;
    this.yaw = 0;
    this.pitch = 0;
    this.touched = false;
  }

  /** The scene's median depth, once known: the pivot of the home view (which stays the
   *  photo's view whatever the pivot, since the eye stays at the origin). */
  setHomeDepth(depth) {
    if (!(depth > 0) || !Number.isFinite(depth)) return;
    this.homeDepth = depth;
    if (!this.touched) this.reset();
  }

  /** Columns right, down, forward of the camera in world coordinates. */
  axes() {
    const cy = Math.cos(this.yaw), sy = Math.sin(this.yaw);
    const cp = Math.cos(this.pitch), sp = Math.sin(this.pitch);
    // Ry(yaw) · Rx(pitch), Rx = [[1,0,0],[0,c,-s],[0,s,c]], Ry = [[c,0,s],[0,1,0],[-s,0,c]].
    const right = [cy, 0, -sy];
    const down = [sy * sp, cp, cy * sp];
    const forward = [sy * cp, -sp, cy * cp];
    return { right, down, forward };
  }

  eye() {
    const { forward } = this.axes();
    return this.pivot.map((p, i) => p - this.distance * forward[i]);
  }

  /** World-to-camera: rows of the rotation and the translation (X_cam = R X + t). */
  view() {
    const { right, down, forward } = this.axes();
    const rows = [right, down, forward];
    const eye = this.eye();
    const t = rows.map((r) => -(r[0] * eye[0] + r[1] * eye[1] + r[2] * eye[2]));
    return { rows, t };
  }

  orbit(dYaw, dPitch) {
    this.yaw += dYaw;
    this.pitch = Math.max(-PITCH_LIMIT, Math.min(PITCH_LIMIT, this.pitch + dPitch));
    this.touched = true;
  }

  /** Move the pivot (and eye) by a screen offset in pixels at the pivot's depth. */
  pan(dxPixels, dyPixels, focalPixels) {
    const { right, down } = this.axes();
    const k = this.distance / focalPixels;
    for (let i = 0; i < 3; i++) this.pivot[i] -= k * (dxPixels * right[i] + dyPixels * down[i]);
    this.touched = true;
  }

  /** Dolly towards (factor < 1) or away from the pivot. */
  zoom(factor) {
    const least = this.homeDepth * 1e-3;
    this.distance = Math.max(least, this.distance * factor);
    this.touched = true;
  }
}

/**
 * Intrinsics for a canvas of width×height pixels showing a photo of the given size: the photo
 * fitted whole and centred, square pixels (the CPU preview's input_camera at the same size).
 */
export function intrinsics(photo, width, height) {
  const scale = Math.min(width / photo.width, height / photo.height);
  return { fx: photo.f_px * scale, fy: photo.f_px * scale, cx: width / 2, cy: height / 2 };
}
