"""A benchmark model: its forward pass takes T seconds and returns SHARP-sized output.

It keeps SHARP's forward contract, ``forward(image [1, 3, 1536, 1536], disparity_factor [1])``,
and returns two layers of 768 × 768 Gaussians with the shapes of ml-sharp's ``Gaussians3D``
(``[1, N, 3]`` means, scales, colours, ``[1, N, 4]`` quaternions, ``[1, N]`` opacities). The
values depend on the image and on the checkpoint, so loading is observable, and the pass lasts
T seconds of wall time in total (computing the output is part of T), with the GIL released:
like a model on an accelerator, it leaves the CPU to the decode and write threads.

``[model] factory = "bench.sleepy_model:create"`` picks T from ``BENCH_SLEEP_SECONDS``
(default 2) and the grid side from ``BENCH_SLEEPY_SIDE`` (default 768); :func:`factory`
makes a factory for a given T.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.scene import NdcGaussians

SLEEP_ENV = "BENCH_SLEEP_SECONDS"
SIDE_ENV = "BENCH_SLEEPY_SIDE"
SIDE = 768
LAYERS = 2


class SleepyModel(nn.Module):
    """LAYERS × SIDE × SIDE Gaussians per image, after a fixed wall-clock delay."""

    layer_depth: torch.Tensor

    def __init__(self, sleep_seconds: float | None = None, side: int | None = None) -> None:
        super().__init__()
        self.sleep_seconds = (
            float(os.environ.get(SLEEP_ENV, "2.0")) if sleep_seconds is None else sleep_seconds
        )
        self.side = int(os.environ.get(SIDE_ENV, SIDE)) if side is None else side
        self.depth = nn.Parameter(torch.ones(1))
        self.log_scale = nn.Parameter(torch.full((3,), -6.0))
        self.opacity_gain = nn.Parameter(torch.ones(1))
        self.register_buffer("layer_depth", torch.tensor([0.0, 0.25]))
        self._pattern: tuple[torch.Tensor, torch.Tensor] | None = None

    def _fixed_pattern(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-Gaussian scale jitter and unit quaternions: not learned, made once per process."""
        if self._pattern is None or self._pattern[0].device != device:
            n = LAYERS * self.side * self.side
            g = torch.Generator().manual_seed(1234)
            jitter = torch.exp(torch.empty(n, 3).uniform_(-1.5, 1.5, generator=g))
            quats = F.normalize(torch.randn(n, 4, generator=g), dim=1)
            self._pattern = (jitter.to(device), quats.to(device))
        return self._pattern

    def forward(self, image: torch.Tensor, disparity_factor: torch.Tensor) -> NdcGaussians:
        start = time.monotonic()
        s = self.side
        pooled = F.adaptive_avg_pool2d(image, (s, s))  # [1, 3, s, s]
        colors = pooled.clamp(0, 1).pow(2.2).flatten(2).transpose(1, 2)  # [1, s², 3] linear
        luma = pooled.mean(1).flatten(1)  # [1, s²]
        axis = (torch.arange(s, dtype=image.dtype, device=image.device) + 0.5) / s * 2 - 1
        v, u = torch.meshgrid(axis, axis, indexing="ij")
        means, opacities = [], []
        for layer in range(LAYERS):
            z = self.depth * (1.0 + self.layer_depth[layer] + 0.5 * luma) / disparity_factor
            means.append(torch.stack([u.flatten()[None] * z, v.flatten()[None] * z, z], -1))
            opacities.append(torch.sigmoid(self.opacity_gain * (luma - 0.5 + layer)))
        jitter, quats = self._fixed_pattern(image.device)
        mean = torch.cat(means, 1)  # [1, N, 3]
        scales = self.log_scale.exp() * jitter[None] * mean[..., 2:]
        out = NdcGaussians(
            mean_vectors=mean,
            singular_values=scales,
            quaternions=quats[None].clone(),
            colors=torch.cat([colors] * LAYERS, 1),
            opacities=torch.cat(opacities, 1),
        )
        remaining = self.sleep_seconds - (time.monotonic() - start)
        if remaining > 0:
            time.sleep(remaining)
        return out


def create() -> SleepyModel:
    """The factory for ``[model] factory``: T from ``BENCH_SLEEP_SECONDS``, the grid side
    from ``BENCH_SLEEPY_SIDE`` (default 768, SHARP's)."""
    return SleepyModel()


def factory(sleep_seconds: float, side: int = SIDE) -> Callable[[], SleepyModel]:
    """A zero-argument factory for a model whose forward takes ``sleep_seconds``."""
    return lambda: SleepyModel(sleep_seconds, side)


def write_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint with values unlike the defaults (so that loading is observable)."""
    model = SleepyModel(0.0)
    with torch.no_grad():
        model.depth.fill_(3.0)
        model.log_scale.copy_(torch.tensor([-6.5, -6.0, -7.0]))
        model.opacity_gain.fill_(4.0)
        model.layer_depth.copy_(torch.tensor([0.0, 0.4]))
    state = model.state_dict()
    torch.save(state, path)
    return state
