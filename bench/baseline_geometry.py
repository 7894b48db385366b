"""The plain reference for `sharpmld.worker.geometry`: what ml-sharp does, slowly and in float64.

Every covariance M R S² Rᵀ Mᵀ is built in float64 and decomposed with `torch.linalg.svd` on the
CPU, flipping the last column where det(U) < 0 so the result is a proper rotation; rotations
become quaternions with a straightforward masked Shepperd conversion. The benchmark times the
fast path against this, and the tests use it as ground truth.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from sharpmld.formats.gaussians import Gaussians
from sharpmld.worker.geometry import NdcGaussiansLike, unprojection_matrix


def reference_rotations(quaternions: Tensor) -> Tensor:
    """[N, 4] (w, x, y, z) → [N, 3, 3] float64 rotations of the normalised quaternions."""
    q = quaternions.to(torch.float64)
    w, x, y, z = (q / q.norm(dim=-1, keepdim=True)).unbind(-1)
    return torch.stack(
        [
            torch.stack([w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            torch.stack([2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)], -1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z], -1),
        ],
        -2,
    )


def reference_quaternions(r: Tensor) -> Tensor:
    """[N, 3, 3] rotations → [N, 4] unit quaternions (w ≥ 0), one masked branch at a time."""
    r = r.to(torch.float64)
    diag = torch.diagonal(r, dim1=-2, dim2=-1)
    trace = diag.sum(-1)
    choice = torch.cat([trace.unsqueeze(-1), diag], -1).argmax(-1)  # largest of w², x², y², z²
    out = torch.empty(r.shape[0], 4, dtype=torch.float64)
    for k in range(4):
        m = r[choice == k]
        if k == 0:
            s = 2 * torch.sqrt(1 + m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2])
            parts = [s / 4, (m[:, 2, 1] - m[:, 1, 2]) / s, (m[:, 0, 2] - m[:, 2, 0]) / s,
                     (m[:, 1, 0] - m[:, 0, 1]) / s]  # fmt: skip
        else:
            i, j, n = k - 1, k % 3, (k + 1) % 3
            s = 2 * torch.sqrt(1 + m[:, i, i] - m[:, j, j] - m[:, n, n])
            vec = [torch.empty(0)] * 3
            vec[i] = s / 4
            vec[j] = (m[:, j, i] + m[:, i, j]) / s
            vec[n] = (m[:, n, i] + m[:, i, n]) / s
            parts = [(m[:, n, j] - m[:, j, n]) / s, *vec]
        out[choice == k] = torch.stack(parts, -1)
    out = torch.where(out[:, :1] < 0, -out, out)
    unit: Tensor = out / out.norm(dim=-1, keepdim=True)
    return unit


def reference_transform(
    means: Tensor, scales: Tensor, quaternions: Tensor, matrix: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Apply the 3×4 affine [M | t] to N Gaussians; returns float64 (means, scales, quats)."""
    m = matrix.to("cpu", torch.float64)
    lin, offset = m[:, :3], m[:, 3]
    new_means = means.to("cpu", torch.float64) @ lin.T + offset
    rot = reference_rotations(quaternions.cpu())
    s = scales.to("cpu", torch.float64)
    cov = lin @ (rot * (s * s).unsqueeze(-2)) @ rot.transpose(-1, -2) @ lin.T
    u, sv, _ = torch.linalg.svd(cov)
    u[:, :, -1] *= torch.where(torch.linalg.det(u) < 0, -1.0, 1.0).unsqueeze(-1).to(u)
    return new_means, sv.sqrt(), reference_quaternions(u)


def reference_unproject(ndc: NdcGaussiansLike, f_px: float, width: int, height: int) -> Gaussians:
    """`sharpmld.worker.geometry.unproject`, the slow float64 SVD way."""

    def flat(t: Tensor, k: int) -> np.ndarray:
        return np.ascontiguousarray(t.detach().reshape(-1, k).to("cpu", torch.float32).numpy())

    means, scales, quats = reference_transform(
        ndc.mean_vectors.reshape(-1, 3),
        ndc.singular_values.reshape(-1, 3),
        ndc.quaternions.reshape(-1, 4),
        unprojection_matrix(f_px, width, height),
    )
    return Gaussians(
        means=flat(means, 3),
        scales=flat(scales, 3),
        quaternions=flat(quats, 4),
        colors=flat(ndc.colors, 3),
        opacities=flat(ndc.opacities, 1)[:, 0].copy(),
    )
