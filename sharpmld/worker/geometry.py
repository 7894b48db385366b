"""Unprojection of SHARP's NDC Gaussians into metric space, fast on any torch device.

ml-sharp decomposes each transformed covariance with a float64 CPU SVD: seconds per image, and
impossible on MPS (no float64). Here it is closed-form and vectorised in float32: trigonometric
eigenvalues pick the best-separated eigenvalue, cross products of rows of (C - λI) give its
eigenvector, and one Jacobi rotation solves the 2×2 rest exactly even for repeated eigenvalues.
Variances are ‖Bᵀv‖² with C = B Bᵀ, B = M R S, so axes 10⁴× thinner than the longest stay accurate.
Each matrix entry is its own [N] tensor and choices are 0/1 float masks applied with an exact
lerp: plain elementwise kernels, as strided reductions, bool masks and torch.where are far
slower on the CPU than the arithmetic itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from sharpmld.formats.gaussians import Gaussians

INTERNAL_RESOLUTION = 1536
Vec = tuple[Tensor, Tensor, Tensor]
Mat = tuple[Vec, Vec, Vec]  # rows
_Gram = Callable[[Vec, Vec], Vec]
_PAIRS = ((0, 1), (0, 2), (1, 2))


class NdcGaussiansLike(Protocol):
    """What SHARP's predictor returns: batched ([1, N, k]) Gaussians in NDC space."""

    @property
    def mean_vectors(self) -> Tensor: ...
    @property
    def singular_values(self) -> Tensor: ...
    @property
    def quaternions(self) -> Tensor: ...
    @property
    def colors(self) -> Tensor: ...
    @property
    def opacities(self) -> Tensor: ...


def unprojection_matrix(f_px: float, width: int, height: int, internal: int = INTERNAL_RESOLUTION) -> Tensor:
    """The 3×4 NDC→metric map, built the general way ml-sharp does: inv(ndc @ K_resized).

    Computed in float64 and rounded once, so the result is the nearest float32 to
    [diag(width / 2f, height / 2f, 1) | 0] rather than carrying float32 inversion error.
    """
    f64 = torch.float64
    k = torch.tensor(
        [[f_px, 0, width / 2, 0], [0, f_px, height / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=f64
    )
    resize = torch.diag(torch.tensor([internal / width, internal / height, 1, 1], dtype=f64))
    ndc = torch.tensor(
        [[2 / internal, 0, -1, 0], [0, 2 / internal, -1, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=f64
    )
    inverse: Tensor = torch.linalg.inv(ndc @ resize @ k)[:3]
    # Entries that are zero in exact arithmetic come out as ~1e-17 rounding noise for some
    # sizes; zeroing them keeps the map exactly diagonal, which `_lincomb` then exploits.
    inverse[inverse.abs() < 1e-9 * inverse.abs().max()] = 0.0
    return inverse.to(torch.float32)


def _dot(a: Vec, b: Vec) -> Tensor:
    return (a[0] * b[0]).addcmul_(a[1], b[1]).addcmul_(a[2], b[2])


def _cross(a: Vec, b: Vec) -> Vec:
    return (
        (a[1] * b[2]).addcmul_(a[2], b[1], value=-1),
        (a[2] * b[0]).addcmul_(a[0], b[2], value=-1),
        (a[0] * b[1]).addcmul_(a[1], b[0], value=-1),
    )


def _combine(coeffs: Sequence[Tensor], rows: Mat) -> Vec:
    """Σ_i coeffs[i]·rows[i], e.g. Bᵀe."""
    (c0, c1, c2), (r0, r1, r2) = coeffs, rows
    return tuple((c0 * r0[j]).addcmul_(c1, r1[j]).addcmul_(c2, r2[j]) for j in range(3))  # type: ignore[return-value]


def _greater(x: Tensor, y: Tensor) -> Tensor:
    """Float mask (x > y) as 0/1: bool masks and torch.where are ~10× slower on the CPU."""
    return torch.sub(x, y).sign_().clamp_(min=0)


def _sign(x: Tensor) -> Tensor:
    """±1 with +1 at zero (copysign, without relying on every backend having it)."""
    return torch.sign(x).add_(0.5).sign_()


def _cycle(mask: Tensor, a: Tensor, b: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(a, b, c) where mask is 1, else (b, c, a); lerp with 0/1 weights selects exactly."""
    return torch.lerp(b, a, mask), torch.lerp(c, b, mask), torch.lerp(a, c, mask)


def _lincomb(coeffs: Sequence[float], terms: Sequence[Tensor], const: float = 0.0) -> Tensor:
    """Σ coeffs[k]·terms[k] + const, skipping zero coefficients (the unprojection is diagonal)."""
    out: Tensor | None = None
    for c, t in zip(coeffs, terms, strict=True):
        if c != 0.0:
            out = t * c if out is None else torch.add(out, t, alpha=c)
    if out is None:
        return torch.full_like(terms[0], const)
    return out + const if const != 0.0 else out


def _rotation(w: Tensor, x: Tensor, y: Tensor, z: Tensor) -> Mat:
    """Quaternion components (any norm) → rotation rows; a zero quaternion gives identity."""
    n2 = (w * w).addcmul_(x, x).addcmul_(y, y).addcmul_(z, z)
    k = 2 / n2.clamp_min(torch.finfo(w.dtype).tiny)
    kx, ky, kz = k * x, k * y, k * z
    xx, yy, zz, xy, xz, yz = kx * x, ky * y, kz * z, kx * y, kx * z, ky * z
    wx, wy, wz = kx * w, ky * w, kz * w
    return (
        (1 - yy - zz, xy - wz, xz + wy),
        (xy + wz, 1 - xx - zz, yz - wx),
        (xz - wy, yz + wx, 1 - xx - yy),
    )


def _quaternion(r: Mat) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Rotation rows → unit quaternion (w, x, y, z) with w ≥ 0.

    Shepperd's method: of the four candidates 4q_k·q, use the one with the largest q_k² so no
    division by a small number happens (180° turns have w = 0).
    """
    (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = r
    p, m = r11 + r22, r11 - r22
    t0, t1, t2, t3 = 1 + r00 + p, 1 + r00 - p, 1 - r00 + m, 1 - r00 - m
    d1, d2, d3, s1, s2, s3 = r21 - r12, r02 - r20, r10 - r01, r01 + r10, r02 + r20, r12 + r21
    m01, m23 = _greater(t1, t0), _greater(t3, t2)
    m_hi = _greater(torch.maximum(t2, t3), torch.maximum(t0, t1))
    # Candidate k is row k of this symmetric table, so row k also lists every component k.
    table = ((t0, d1, d2, d3), (d1, t1, s1, s2), (d2, s1, t2, s3), (d3, s2, s3, t3))
    q = [torch.lerp(torch.lerp(a, b, m01), torch.lerp(c, d, m23), m_hi) for a, b, c, d in table]
    n2 = (q[0] * q[0]).addcmul_(q[1], q[1]).addcmul_(q[2], q[2]).addcmul_(q[3], q[3])
    inv = torch.rsqrt(n2).mul_(_sign(q[0]))  # chosen t_k ≥ 1, so n2 ≥ 1
    return q[0] * inv, q[1] * inv, q[2] * inv, q[3] * inv


def _frame(c: Mat, gram: _Gram) -> tuple[Tensor, Tensor, Vec, Vec, Vec, Vec]:
    """Eigen-frame of a symmetric matrix with entries O(1) (callers normalise).

    Returns (top, λ, u, g, h, (a, b, c)): u is the eigenvector of the best-separated eigenvalue
    λ (the largest where top = 1, else the smallest), g and h those of the 2×2 block
    [[a, b], [b, c]] = gram(e, f) on u's orthogonal plane (g the larger), with (u, g, h) a
    proper rotation. ``gram`` lets callers evaluate the block from a more accurate factor.
    """
    (c00, c01, c02), (_, c11, c12), (_, _, c22) = c
    q = (c00 + c11 + c22) / 3
    d0, d1, d2 = c00 - q, c11 - q, c22 - q
    off = torch.addcmul(torch.addcmul(c01 * c01, c02, c02), c12, c12)
    p = torch.sqrt((torch.addcmul(torch.addcmul(d0 * d0, d1, d1), d2, d2) + 2 * off) / 6)
    inv = 1 / p.clamp_min(torch.finfo(p.dtype).tiny)  # p = 0: isotropic, any angle will do
    d0, d1, d2, b01, b02, b12 = d0 * inv, d1 * inv, d2 * inv, c01 * inv, c02 * inv, c12 * inv
    det = d0 * (d1 * d2 - b12 * b12) - b01 * (b01 * d2 - b12 * b02) + b02 * (b01 * b12 - d1 * b02)
    phi = torch.acos((det / 2).clamp_(-1, 1)) / 3
    l1 = torch.addcmul(q, p, torch.cos(phi), value=2)
    l3 = torch.addcmul(q, p, torch.cos(phi + 2 * math.pi / 3), value=2)
    l2 = 3 * q - l1 - l3
    top = _greater(l1 - l2, l2 - l3)  # 1 where λ1 is better separated than λ3
    lam = torch.lerp(l3, l1, top)
    # Eigenvector of the isolated λ: every cross product of two rows of (C - λI) is parallel
    # to it; add them with aligned signs so the largest dominates, without picking one.
    n0, n1, n2 = (c00 - lam, c01, c02), (c01, c11 - lam, c12), (c02, c12, c22 - lam)
    v, x02, x12 = _cross(n0, n1), _cross(n0, n2), _cross(n1, n2)
    for x in (x02, x12):
        sign = _sign(_dot(v, x))
        v = (v[0].addcmul_(sign, x[0]), v[1].addcmul_(sign, x[1]), v[2].addcmul_(sign, x[2]))
    v = (v[0] + 1e-18, v[1], v[2])  # all rows ~0 only if C is isotropic: then any axis works
    inv = torch.rsqrt(_dot(v, v))
    u = (v[0] * inv, v[1] * inv, v[2] * inv)
    # Orthonormal basis (e, f) of u's plane without branches (Duff et al. 2017), then the
    # 2×2 problem there via one Jacobi angle, exact even for equal eigenvalues.
    sign = _sign(u[2])
    a = -1 / (sign + u[2])
    b = u[0] * u[1] * a
    e = (torch.addcmul(torch.ones_like(a), sign * a, u[0] * u[0]), sign * b, -sign * u[0])
    f = (b, torch.addcmul(sign, a, u[1] * u[1]), -u[1])
    g2 = gram(e, f)
    theta = torch.atan2(2 * g2[1], g2[0] - g2[2]) / 2
    cos, sin = torch.cos(theta), torch.sin(theta)
    g = tuple(torch.addcmul(cos * ei, sin, fi) for ei, fi in zip(e, f, strict=True))
    h = _cross(u, g)  # type: ignore[arg-type]
    return top, lam, u, g, h, g2  # type: ignore[return-value]


def rotations_from_quaternions(q: Tensor) -> Tensor:
    """[..., 4] quaternions (w, x, y, z), normalised here → [..., 3, 3] rotation matrices."""
    return torch.stack([torch.stack(row, -1) for row in _rotation(*q.unbind(-1))], -2)


def _decompose(x: Tensor, s: Tensor, q: Tensor, m: list[list[float]]) -> list[Tensor]:
    """One chunk of `transform_gaussians` on [3|4, n] component rows → 10 [n] components."""
    new_means = [_lincomb(m[i][:3], list(x), m[i][3]) for i in range(3)]
    s_max = torch.maximum(torch.maximum(s[0], s[1]), s[2]).clamp_min(torch.finfo(s.dtype).tiny)
    inv = 1 / s_max  # scale-free maths: neither huge nor tiny scales over/underflow
    # B = M R S / (s_max m_max), so C = B Bᵀ; zero entries of M are skipped (ours is diagonal).
    # Built in float64 where the device has it: a float32 R carries absolute errors ~1e-7 in
    # near-zero entries that an anisotropic M (long lenses) amplifies by its condition number.
    wide = s.dtype if s.device.type == "mps" else torch.float64
    sn = [(s[j] * inv).to(wide) for j in range(3)]
    r = _rotation(*q.to(wide))
    m_max = max(abs(v) for row in m for v in row[:3]) or 1.0
    b: Mat = tuple(  # type: ignore[assignment]
        tuple(
            _lincomb([v / m_max for v in m[i][:3]], [r[k][j] * sn[j] for k in range(3)]).to(s.dtype)
            for j in range(3)
        )
        for i in range(3)
    )
    (c00, c11, c22), (c01, c02, c12) = (_dot(row, row) for row in b), (_dot(b[i], b[j]) for i, j in _PAIRS)
    c: Mat = ((c00, c01, c02), (c01, c11, c12), (c02, c12, c22))

    def gram(e: Vec, f: Vec) -> Vec:
        be, bf = _combine(e, b), _combine(f, b)
        return _dot(be, be), _dot(be, bf), _dot(bf, bf)

    top, _, u, g, h, (ga, gb, gc) = _frame(c, gram)
    # Variances as ‖Bᵀv‖² (sums of squares, no cancellation) keep thin axes accurate.
    bu, bh = _combine(u, b), _combine(h, b)
    var_g = torch.sqrt(torch.addcmul(gb * gb, ga - gc, ga - gc, value=0.25)).add_(ga + gc, alpha=0.5)
    var = _cycle(top, _dot(bu, bu), var_g, _dot(bh, bh))
    new_scales = [v.sqrt_().mul_(s_max).mul_(m_max) for v in var]
    rot: Mat = tuple(_cycle(top, u[i], g[i], h[i]) for i in range(3))  # type: ignore[assignment]
    return [*new_means, *new_scales, *_quaternion(rot)]


# Elements per thread and chunk: ~50 live intermediates of this size stay in cache, whereas
# whole-array passes are DRAM-bound (2 cores, 1.18M Gaussians: chunked ~1.4× faster).
_CPU_CHUNK = 1 << 16


def transform_gaussians(
    means: Tensor, scales: Tensor, quaternions: Tensor, matrix: Tensor, out: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Apply the affine map [M | t] (3×4) to N Gaussians ([N, 3], [N, 3], [N, 4]).

    The covariance R S² Rᵀ becomes B Bᵀ with B = M R S and is decomposed back into descending
    scales and a proper rotation on the tensors' device, in float32 (float64 for float64 means).
    Results are written to out[:, :10] if given ([N, ≥10]); views of it are returned.
    """
    dtype = torch.float64 if means.dtype == torch.float64 else torch.float32
    n, m = means.shape[0], matrix.detach().to("cpu", torch.float64).tolist()
    with torch.no_grad():
        out = torch.empty(n, 10, dtype=dtype, device=means.device) if out is None else out
        step = _CPU_CHUNK * torch.get_num_threads() if out.device.type == "cpu" else max(n, 1)
        for i in range(0, n, step):
            x, s, q = (
                t[i : i + step].detach().to(out.dtype).T.contiguous() for t in (means, scales, quaternions)
            )
            out[i : i + step, :10] = torch.stack(_decompose(x, s, q, m), -1)
    return out[:, :3], out[:, 3:6], out[:, 6:10]


def _unbatch(t: Tensor, width: int) -> Tensor:
    """[1, N, k] or [N, k] → [N, k]; SHARP always predicts a single image."""
    if t.dim() == 3 and t.shape[0] != 1:
        raise ValueError(f"expected a batch of one image, got shape {tuple(t.shape)}")
    return t.detach().reshape(-1, width)


def unproject(ndc: NdcGaussiansLike, f_px: float, width: int, height: int) -> Gaussians:
    """SHARP's NDC Gaussians → metric-space `Gaussians` for an image of width×height pixels.

    Everything runs on the tensors' device; the result crosses to the CPU in a single copy.
    """
    means = _unbatch(ndc.mean_vectors, 3)
    with torch.no_grad():
        out = torch.empty(means.shape[0], 14, dtype=torch.float32, device=means.device)
        scales, quats = _unbatch(ndc.singular_values, 3), _unbatch(ndc.quaternions, 4)
        transform_gaussians(means, scales, quats, unprojection_matrix(f_px, width, height), out)
        out[:, 10:13] = _unbatch(ndc.colors, 3)
        out[:, 13:] = _unbatch(ndc.opacities, 1)
        host = out.cpu().numpy()
    a, b, q, col, o = (np.ascontiguousarray(x) for x in np.split(host, [3, 6, 10, 13], axis=1))
    return Gaussians(means=a, scales=b, quaternions=q, colors=col, opacities=o[:, 0].copy())
