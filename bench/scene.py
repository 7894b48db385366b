"""A synthetic SHARP-sized scene: the model's NDC output, with SHARP's shapes and plausible values."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# A 3:4 photo as the camera saw it, the setting every post-processing benchmark uses.
F_PX, WIDTH, HEIGHT = 1450.0, 1536, 1152


@dataclass
class NdcGaussians:
    """What SHARP's predictor returns (ml-sharp's ``Gaussians3D``): five batched tensors."""

    mean_vectors: torch.Tensor  # [1, N, 3]
    singular_values: torch.Tensor  # [1, N, 3]
    quaternions: torch.Tensor  # [1, N, 4]
    colors: torch.Tensor  # [1, N, 3] linear RGB
    opacities: torch.Tensor  # [1, N]


def ndc_scene(n: int, seed: int = 0) -> NdcGaussians:
    """``n`` Gaussians: NDC positions over a depth range, log-uniform anisotropic scales
    (1e-4..1e-1, so condition numbers up to 10³), unnormalised random rotations."""
    g = torch.Generator().manual_seed(seed)
    z = torch.exp(torch.empty(n).uniform_(math.log(0.5), math.log(30.0), generator=g))
    xy = torch.empty(n, 2).uniform_(-1, 1, generator=g) * z[:, None]
    means = torch.cat([xy, z[:, None]], 1)
    scales = torch.exp(torch.empty(n, 3).uniform_(math.log(1e-4), math.log(1e-1), generator=g))
    scales *= z[:, None]
    quats = torch.randn(n, 4, generator=g) * torch.empty(n, 1).uniform_(0.5, 2.0, generator=g)
    colors = torch.rand(n, 3, generator=g)
    opacities = torch.rand(n, generator=g).clamp_(1e-4, 1 - 1e-4)
    return NdcGaussians(means[None], scales[None], quats[None], colors[None], opacities[None])
