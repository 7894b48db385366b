"""Target 1: unprojecting SHARP's output, closed-form float32 vs ml-sharp's float64 SVD."""

from __future__ import annotations

import numpy as np
import torch

from bench.baseline_geometry import reference_rotations, reference_unproject
from bench.common import SHARP_GAUSSIANS, Figure, median, timed
from bench.scene import F_PX, HEIGHT, WIDTH, ndc_scene
from sharpmld.formats.gaussians import Gaussians
from sharpmld.worker.geometry import unproject

TARGET_RATIO = 10.0
TARGET_COV_ERROR = 1e-5


def covariances(g: Gaussians) -> torch.Tensor:
    """float64 R diag(s²) Rᵀ of each Gaussian."""
    r = reference_rotations(torch.from_numpy(g.quaternions))
    s = torch.from_numpy(g.scales).to(torch.float64)
    return (r * (s * s).unsqueeze(-2)) @ r.transpose(-1, -2)


def max_covariance_error(fast: Gaussians, ref: Gaussians) -> float:
    """max over Gaussians of ‖C_fast − C_ref‖_F / ‖C_ref‖_F, chunked to bound memory."""
    worst = 0.0
    step = 1 << 18
    for i in range(0, len(ref), step):
        part = slice(i, i + step)
        a = covariances(Gaussians(*(getattr(fast, k)[part] for k in _FIELDS)))
        b = covariances(Gaussians(*(getattr(ref, k)[part] for k in _FIELDS)))
        rel = (a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)
        worst = max(worst, float(rel.max()))
    return worst


_FIELDS = ("means", "scales", "quaternions", "colors", "opacities")


def run(quick: bool) -> list[Figure]:
    n = 20_000 if quick else SHARP_GAUSSIANS
    ndc = ndc_scene(n)
    fast_runs, fast = timed(lambda: unproject(ndc, F_PX, WIDTH, HEIGHT), 3 if quick else 7, warmup=1)
    ref_runs, ref = timed(lambda: reference_unproject(ndc, F_PX, WIDTH, HEIGHT), 1 if quick else 3)
    error = max_covariance_error(fast, ref)
    mean_error = float(np.abs(fast.means.astype(np.float64) - ref.means).max())
    value, base = median(fast_runs), median(ref_runs)
    ratio = base / value
    return [
        Figure(
            name="unproject",
            group="geometry",
            title=f"unproject {n:,} Gaussians (torch {torch.get_num_threads()} threads)",
            value=value,
            unit="s",
            baseline=base,
            baseline_label="float64 SVD (bench/baseline_geometry)",
            ratio=ratio,
            target=f"≥ {TARGET_RATIO:g}× and cov. rel. error ≤ {TARGET_COV_ERROR:g}",
            passed=ratio >= TARGET_RATIO and error <= TARGET_COV_ERROR,
            runs=fast_runs,
            notes=f"max covariance rel. error {error:.2e}; max |Δmean| {mean_error:.1e}",
            extra={
                "gaussians": n,
                "baseline_runs": ref_runs,
                "max_cov_rel_error": error,
                "max_mean_abs_error": mean_error,
            },
        )
    ]
