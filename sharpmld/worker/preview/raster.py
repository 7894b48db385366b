"""A CPU (or MPS) 3D Gaussian splat rasteriser in plain torch, for previews without gsplat.

Each Gaussian is projected with the EWA approximation (Σ' = J W Σ Wᵀ Jᵀ plus a 0.3 px² low-pass
dilation) and expanded into *fragments*: one (pixel, alpha) pair for every pixel centre inside
its 3σ box whose alpha reaches 1/255. Compositing needs each pixel's fragments front to back.
Gaussians are sorted by depth once and fragments are generated Gaussian-major, so one stable
sort of the fragments by pixel index puts every pixel's fragments next to each other *and* in
depth order. The transmittance in front of each fragment is then an exclusive segmented prefix
sum of log(1 - α) over that sorted array (float64, so the long running sum loses nothing), and
index_add gathers the weighted colours. Everything is a few dozen vectorised passes.

Why fragments rather than 16×16 tiles: SHARP's Gaussians are about a preview pixel wide, so a
Gaussian touches ~15 pixels (3σ of the 0.3 px² dilation alone spans 3-4 pixels), while a tile
renderer evaluates it at every pixel of every tile it overlaps: ~400 for 16 px tiles and a
2 px radius. For 1.18 M Gaussians at 512 px that is 17 M fragment evaluations instead of ~470 M;
the sort of the fragments' int32 pixel keys is what the saving costs.

Memory stays bounded: fragments are made in depth-ordered chunks of about ``max_fragments``;
each chunk is composited on its own and folded into the image with the transmittance carried
per pixel. Before a chunk's fragments are made, Gaussians whose whole box is already opaque
(every pixel at T < 1e-4, looked up in a summed-area table) are dropped, and so are fragments
on opaque pixels, so hidden layers cost little once the layers in front have been drawn.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from sharpmld.formats.gaussians import Gaussians
from sharpmld.formats.ply import linear_to_srgb, srgb_to_linear
from sharpmld.worker.geometry import rotations_from_quaternions
from sharpmld.worker.preview.camera import Camera

U8 = npt.NDArray[np.uint8]

DILATION_PX2 = 0.3
"""Low-pass filter added to the diagonal of every projected covariance (pixels²)."""
ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
T_DONE = 1e-4
"""A pixel whose transmittance fell below this takes no further fragments."""
EXTENT_SIGMAS = 3.0
FRUSTUM_SLACK = 1.3
"""The Jacobian is evaluated with x/z, y/z clamped to 1.3× the field of view (EWA is unstable
for Gaussians far outside it, whose footprint the linearisation blows up)."""
MAX_FRAGMENTS = 1 << 19


class SplatScene:
    """Gaussians as render-ready tensors; the world covariances are computed once for all views."""

    def __init__(self, g: Gaussians, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.count = len(g)
        dev = self.device
        with torch.no_grad():
            self.means = torch.as_tensor(np.ascontiguousarray(g.means, np.float32), device=dev).T.contiguous()
            self.colors = torch.as_tensor(np.ascontiguousarray(g.colors, np.float32), device=dev)
            self.opacities = torch.as_tensor(np.ascontiguousarray(g.opacities, np.float32), device=dev)
            rot = rotations_from_quaternions(torch.as_tensor(g.quaternions, dtype=torch.float32, device=dev))
            var = torch.as_tensor(g.scales, dtype=torch.float32, device=dev).square()
            # Σ = R diag(s²) Rᵀ, as its six distinct entries (xx, xy, xz, yy, yz, zz), each [N].
            m = rot * var[:, None, :]
            self.cov = torch.stack(
                [
                    (m[:, i, :] * rot[:, j, :]).sum(-1)
                    for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
                ]
            )

    def median_depth(self) -> float:
        """Median z of the Gaussians in front of the input camera (1 m for an empty scene)."""
        z = self.means[2]
        z = z[z > 0]
        if z.numel() == 0:
            return 1.0
        if z.numel() > 1 << 20:  # a strided sample is plenty for a median
            z = z[:: z.numel() // (1 << 18)]
        return float(z.median())


@dataclass
class _Projected:
    """The visible Gaussians in front-to-back order, one contiguous [n] tensor per quantity."""

    off_x: Tensor  # x0 + 0.5 - u: the x offset from the centre to the box's first pixel centre
    off_y: Tensor
    conic_xx: Tensor  # exponent = xx dx² + xy dx dy + yy dy² (the inverse covariance × -½)
    conic_xy: Tensor
    conic_yy: Tensor
    opacity: Tensor
    red: Tensor  # linear RGB
    green: Tensor
    blue: Tensor
    origin: Tensor  # int32: pixel index of the box's top-left pixel
    box_w: Tensor  # int32
    corners: Tensor  # int32 [4, n]: (y0, x0), (y0, x1 + 1), (y1 + 1, x0), (y1 + 1, x1 + 1) as
    # indices into a (height + 1) × (width + 1) summed-area table
    counts: Tensor  # int64: pixels in the box


def _project(scene: SplatScene, cam: Camera, width: int, height: int, near: float) -> _Projected:
    r = np.asarray(cam.rotation, dtype=np.float64).tolist()
    t = np.asarray(cam.translation, dtype=np.float64).tolist()
    mx, my, mz = scene.means
    z = mx * r[2][0] + my * r[2][1] + mz * r[2][2] + t[2]
    # Everything below runs on all N (nearly all are visible in a preview); the invisible get an
    # empty box at the end. Their z is replaced so that no division misbehaves.
    visible = (z > near) & (scene.opacities >= ALPHA_MIN)
    z = torch.where(visible, z, 1.0)
    x = mx * r[0][0] + my * r[0][1] + mz * r[0][2] + t[0]
    y = mx * r[1][0] + my * r[1][1] + mz * r[1][2] + t[1]
    iz = 1 / z
    xz, yz = x * iz, y * iz
    u, v = xz * cam.fx + cam.cx, yz * cam.fy + cam.cy
    lim_x = FRUSTUM_SLACK * max(cam.cx, width - cam.cx) / cam.fx
    lim_y = FRUSTUM_SLACK * max(cam.cy, height - cam.cy) / cam.fy
    kx, ky = xz.clamp_(-lim_x, lim_x), yz.clamp_(-lim_y, lim_y)
    # T = J W (2×3): row 0 = (fx / z) (W₀ - kx W₂), row 1 = (fy / z) (W₁ - ky W₂).
    fxz, fyz = iz * cam.fx, iz * cam.fy
    t0 = [fxz * (r[0][j] - kx * r[2][j]) for j in range(3)]
    t1 = [fyz * (r[1][j] - ky * r[2][j]) for j in range(3)]
    sxx, sxy, sxz, syy, syz, szz = scene.cov
    rows = ((sxx, sxy, sxz), (sxy, syy, syz), (sxz, syz, szz))
    s_t0 = [rows[i][0] * t0[0] + rows[i][1] * t0[1] + rows[i][2] * t0[2] for i in range(3)]
    s_t1 = [rows[i][0] * t1[0] + rows[i][1] * t1[1] + rows[i][2] * t1[2] for i in range(3)]
    a = t0[0] * s_t0[0] + t0[1] * s_t0[1] + t0[2] * s_t0[2] + DILATION_PX2
    b = t1[0] * s_t0[0] + t1[1] * s_t0[1] + t1[2] * s_t0[2]
    c = t1[0] * s_t1[0] + t1[1] * s_t1[1] + t1[2] * s_t1[2] + DILATION_PX2
    del rows, s_t0, s_t1, t0, t1
    opacity = scene.opacities
    # Beyond 3σ, or where even the centre's alpha would round below 1/255, nothing is drawn.
    reach = torch.sqrt(2 * torch.log((opacity * (ALPHA_MAX / ALPHA_MIN)).clamp_min(1.0)))
    reach = reach.clamp_max(EXTENT_SIGMAS)
    rx, ry = reach * a.sqrt(), reach * c.sqrt()
    x0 = torch.ceil(u - rx - 0.5).clamp_min(0)
    x1 = torch.floor(u + rx - 0.5).clamp_max(width - 1)
    y0 = torch.ceil(v - ry - 0.5).clamp_min(0)
    y1 = torch.floor(v + ry - 0.5).clamp_max(height - 1)
    box_w, box_h = (x1 - x0 + 1).clamp_min(0), (y1 - y0 + 1).clamp_min(0)
    counts = (box_w * box_h).mul_(visible)  # NaN (never > 0) for non-finite Gaussians
    keep = torch.nonzero(counts > 0).squeeze(1)
    # z > near > 0, and positive floats order like their bit patterns: an int32 (radix) sort
    # is ~15× faster than a float sort on the CPU.
    depth_bits = z.index_select(0, keep).view(torch.int32)
    keep = keep.index_select(0, torch.sort(depth_bits, stable=True).indices)
    inv_det = 1 / (a * c - b * b).clamp_min(1e-12)
    colors = scene.colors.index_select(0, keep).T

    def pick(q: Tensor) -> Tensor:
        return q.index_select(0, keep).contiguous()

    stride = width + 1
    top, bottom, left, right = y0 * stride, (y1 + 1) * stride, x0, x1 + 1
    corners = torch.stack([top + left, top + right, bottom + left, bottom + right])

    return _Projected(
        off_x=pick(x0 + 0.5 - u),
        off_y=pick(y0 + 0.5 - v),
        conic_xx=pick(c * inv_det * -0.5),
        conic_xy=pick(b * inv_det),
        conic_yy=pick(a * inv_det * -0.5),
        opacity=pick(opacity),
        red=colors[0].contiguous(),
        green=colors[1].contiguous(),
        blue=colors[2].contiguous(),
        origin=pick(y0 * width + x0).to(torch.int32),
        box_w=pick(box_w).to(torch.int32),
        corners=corners.index_select(1, keep).to(torch.int32),
        counts=pick(counts).to(torch.int64),
    )


def _alive(p: _Projected, lo: int, hi: int, trans: Tensor, width: int) -> Tensor:
    """Indices (int32) of the Gaussians lo..hi whose box still has a pixel that is not opaque.

    A summed-area table of the unfinished pixels answers it with four lookups per Gaussian.
    """
    height = trans.numel() // width
    open_px = (trans > T_DONE).view(height, width).to(torch.int32)
    table = torch.zeros(height + 1, width + 1, dtype=torch.int32, device=trans.device)
    table[1:, 1:] = open_px.cumsum(0, dtype=torch.int32).cumsum(1, dtype=torch.int32)
    flat = table.view(-1)
    c = p.corners[:, lo:hi]
    inside = flat[c[3]] - flat[c[1]] - flat[c[2]] + flat[c[0]]
    return torch.nonzero(inside > 0).squeeze(1).to(torch.int32).add_(lo)


def _composite_chunk(
    p: _Projected, lo: int, hi: int, width: int, accum: Tensor, trans: Tensor, first: bool
) -> None:
    """Composite the fragments of Gaussians lo..hi (depth order) into accum / trans in place."""
    dev = accum.device
    if first:
        ids = torch.arange(lo, hi, dtype=torch.int32, device=dev)
        counts = p.counts[lo:hi]
    else:
        ids = _alive(p, lo, hi, trans, width)
        counts = p.counts.index_select(0, ids)
    if ids.numel() == 0:
        return
    total = int(counts.sum())
    starts = torch.cumsum(counts, 0).sub_(counts).to(torch.int32)
    gid = torch.repeat_interleave(ids, counts, output_size=total)
    local = torch.arange(total, dtype=torch.int32, device=dev)
    local.sub_(torch.repeat_interleave(starts, counts, output_size=total))
    del starts, counts, ids
    bw = p.box_w.index_select(0, gid)
    ly = torch.div(local, bw, rounding_mode="floor")
    lx = local.sub_(ly * bw)
    del bw, local
    dx = lx.to(torch.float32).add_(p.off_x.index_select(0, gid))
    dy = ly.to(torch.float32).add_(p.off_y.index_select(0, gid))
    power = p.conic_xx.index_select(0, gid).mul_(dx)
    power.addcmul_(p.conic_xy.index_select(0, gid), dy).mul_(dx)
    power.addcmul_(p.conic_yy.index_select(0, gid).mul_(dy), dy)
    alpha = power.exp_().mul_(p.opacity.index_select(0, gid)).clamp_max_(ALPHA_MAX)
    del dx, dy, power
    pixel = p.origin.index_select(0, gid).add_(ly.mul_(width)).add_(lx)
    del lx, ly
    keep = alpha >= ALPHA_MIN
    if not first:
        keep &= trans.index_select(0, pixel) > T_DONE
    sel = torch.nonzero(keep).squeeze(1)
    del keep
    if sel.numel() == 0:
        return
    pixel, alpha, gid = pixel.index_select(0, sel), alpha.index_select(0, sel), gid.index_select(0, sel)
    del sel
    # Fragments are Gaussian-major and Gaussians depth-sorted: a stable sort by pixel leaves
    # each pixel's fragments contiguous and front to back.
    pixel, order = torch.sort(pixel, stable=True)
    alpha, gid = alpha.index_select(0, order), gid.index_select(0, order)
    del order
    log_keep = torch.log1p(-alpha)
    pix_ids, runs = torch.unique_consecutive(pixel, return_counts=True)
    carried = trans.index_select(0, pix_ids)
    log_t, run_log_t = _scan(log_keep, runs, carried)
    weight = log_t.exp_().mul_(alpha)
    del log_t, log_keep, alpha
    for k, channel in enumerate((p.red, p.green, p.blue)):
        accum[k].index_add_(0, pixel, channel.index_select(0, gid).mul_(weight))
    trans[pix_ids] = carried.mul_(run_log_t.exp_())


def _scan(log_keep: Tensor, runs: Tensor, carried: Tensor) -> tuple[Tensor, Tensor]:
    """Per fragment, log T in front of it; per run (pixel), log of the run's own transmittance.

    ``log_keep`` holds log(1 - α) of fragments sorted by pixel then depth, ``runs`` the length of
    each pixel's run and ``carried`` the transmittance each pixel brings from earlier chunks.
    One prefix sum over the whole chunk, in float64 so that subtracting its large running
    values loses nothing (on the CPU: MPS has no float64).
    """
    dev = log_keep.device
    host = torch.device("cpu") if dev.type == "mps" else dev
    log_keep_h, runs_h = log_keep.to(host), runs.to(host)
    csum = torch.cumsum(log_keep_h, 0, dtype=torch.float64)
    run_end = csum.index_select(0, torch.cumsum(runs_h, 0).sub_(1))
    before = torch.cat([run_end.new_zeros(1), run_end[:-1]])
    run_log_t = (run_end - before).to(torch.float32)
    # Exclusive prefix sum minus the sum where the pixel's run starts, plus the carried log T.
    base = before.sub_(carried.to(host).log().to(torch.float64))
    log_t = csum.sub_(torch.repeat_interleave(base, runs_h, output_size=csum.numel()))
    log_t = log_t.to(torch.float32).sub_(log_keep_h)
    return log_t.to(dev), run_log_t.to(dev)


def _chunks(counts: Tensor, max_fragments: int) -> list[int]:
    """Boundaries splitting Gaussians into runs of at most ~max_fragments fragments each
    (a single Gaussian with more fragments than that gets a run of its own)."""
    n = counts.numel()
    ends = torch.cumsum(counts, 0)
    marks = torch.arange(1, int(ends[-1]) // max_fragments + 1, device=counts.device) * max_fragments
    cuts = torch.searchsorted(ends, marks, right=True).clamp_(1, n).tolist()
    return sorted({0, n, *cuts})


def render_scene(
    scene: SplatScene,
    camera: Camera,
    width: int,
    height: int,
    background: tuple[int, int, int] = (0, 0, 0),
    *,
    near: float = 0.01,
    max_fragments: int = MAX_FRAGMENTS,
) -> U8:
    """Render ``scene`` through ``camera`` into an (height, width, 3) sRGB uint8 image."""
    dev = scene.device
    with torch.no_grad():
        accum = torch.zeros(3, height * width, dtype=torch.float32, device=dev)
        trans = torch.ones(height * width, dtype=torch.float32, device=dev)
        proj = _project(scene, camera, width, height, near) if scene.count else None
        if proj is not None and proj.counts.numel():
            for i, (lo, hi) in enumerate(itertools.pairwise(_chunks(proj.counts, max_fragments))):
                _composite_chunk(proj, lo, hi, width, accum, trans, first=i == 0)
        image = accum.T.cpu().numpy().reshape(height, width, 3)
        t = trans.cpu().numpy().reshape(height, width, 1)
    bg = srgb_to_linear(np.asarray(background, dtype=np.float32) / 255.0)
    linear = image + t * bg
    srgb = linear_to_srgb(np.clip(linear, 0.0, 1.0))
    out: U8 = np.clip(np.rint(srgb * 255.0), 0, 255).astype(np.uint8)
    return out
