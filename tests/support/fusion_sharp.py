"""A stand-in with the shape of ml-sharp's feature network where the layout matters.

ml-sharp's feature network makes its decoder's output ``contiguous()`` (NCHW), passes it
through ``feature_model.upsample`` (an identity at SHARP's stride) and then into a block of
convolutions; this model does the same, small, so a test can see which layout that block is
fed and whether the Gaussians change with it. The Gaussians are the tiny model's, moved by
the convolutions' output so that they depend on it.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from tiny_sharp import NdcGaussians, TinySharp
from torch import nn


class FeatureNet(nn.Module):
    """Decoder, ``contiguous()``, identity ``upsample``, fusion: the order ml-sharp uses."""

    def __init__(self) -> None:
        super().__init__()
        self.decoder = nn.Conv2d(3, 16, 3, padding=1)
        self.upsample = nn.Identity()
        self.fusion = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 4, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.decoder(image).contiguous()
        features = self.upsample(features)
        out: torch.Tensor = self.fusion(features)
        return out


class FusionSharp(nn.Module):
    """SHARP's forward contract; positions scaled by the feature network's output."""

    def __init__(self) -> None:
        super().__init__()
        self.feature_model = FeatureNet()
        self.gaussians = TinySharp()

    def forward(self, image: torch.Tensor, disparity_factor: torch.Tensor) -> NdcGaussians:
        small = F.interpolate(image, size=(48, 48), mode="bilinear", align_corners=False)
        features = self.feature_model(small)
        out = self.gaussians(image, disparity_factor)
        scale = 1 + 0.1 * torch.tanh(F.adaptive_avg_pool2d(features[:, :1], (self.gaussians.grid,) * 2))
        out.mean_vectors = out.mean_vectors * scale.flatten(1)[..., None]
        return out


def create() -> FusionSharp:
    """The factory: ``fusion_sharp:create``."""
    return FusionSharp()


def write_checkpoint(path: str | os.PathLike[str], seed: int = 3) -> None:
    """Random weights, saved as a real checkpoint is."""
    torch.manual_seed(seed)
    torch.save(FusionSharp().state_dict(), path)
