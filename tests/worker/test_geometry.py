"""The fast closed-form unprojection agrees with ml-sharp's float64 SVD reference.

Covariances are compared as matrices (R diag(s²) Rᵀ), never as raw quaternions or scale
order, because eigenvectors of repeated eigenvalues and quaternion signs are not unique.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from bench.baseline_geometry import reference_rotations, reference_transform, reference_unproject
from sharpmld.worker import geometry
from sharpmld.worker.geometry import (
    rotations_from_quaternions,
    transform_gaussians,
    unproject,
    unprojection_matrix,
)

COV_TOL = 1e-5
CAMERAS = {
    "landscape": (3000.0, 4032, 3024),
    "portrait": (2500.0, 3024, 4032),
    "square-identity": (768.0, 1536, 1536),  # M = I: isotropic Gaussians stay isotropic
    "wide-angle": (500.0, 1920, 1080),
    "telephoto": (8000.0, 800, 600),
    "extreme-telephoto": (20000.0, 800, 600),  # M's condition number ~67
}


@dataclass(frozen=True)
class Ndc:
    """Stand-in for ml-sharp's Gaussians3D: batched [1, N, k] tensors in NDC space."""

    mean_vectors: torch.Tensor
    singular_values: torch.Tensor
    quaternions: torch.Tensor
    colors: torch.Tensor
    opacities: torch.Tensor


def random_set(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Means, log-uniform scales over 1e-4..1e2 per axis, and unnormalised random quaternions."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * torch.tensor([0.5, 0.5, 2.0]) + torch.tensor([0, 0, 3.0])
    scales = torch.exp(torch.empty(n, 3).uniform_(math.log(1e-4), math.log(1e2), generator=g))
    quats = torch.randn(n, 4, generator=g) * torch.empty(n, 1).uniform_(0.2, 3.0, generator=g)
    return means, scales, quats


def degenerate_set() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every crafted scale pattern under every crafted rotation."""
    scale_patterns = [
        (1.0, 1.0, 1.0), (1e-4, 1e-4, 1e-4), (1e2, 1e2, 1e2),  # isotropic
        (1.0, 1.0, 1e-3), (1e-3, 1e-3, 1.0), (2.0, 1e-2, 2.0), (5.0, 5.0, 5.000001),  # two equal
        (1e-9, 2e-9, 3e-9), (1e-30, 1.0, 1.0),  # tiny
        (1e6, 1e6, 1.0), (1e15, 1.0, 1e15), (3e12, 1e12, 2e12),  # huge
        (1.0, 1e-5, 1e-5), (1e-5, 1.0, 1.0), (1.0, 0.5, 0.25),
    ]  # fmt: skip
    h = 1 / math.sqrt(2)
    rotations = [
        (1.0, 0.0, 0.0, 0.0), (3.0, 0.0, 0.0, 0.0), (-1.0, 0.0, 0.0, 0.0),  # identity
        (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 0.0, 1.0),  # 180° about axes
        (0.0, h, h, 0.0), (0.0, 1.0, 1.0, 1.0), (1e-8, 1.0, 0.0, 0.0),  # 180° and nearly
        (h, h, 0.0, 0.0), (h, 0.0, 0.0, -h), (0.3, -0.2, 0.9, 0.1),  # 90° and generic
    ]  # fmt: skip
    pairs = list(itertools.product(scale_patterns, rotations))
    scales = torch.tensor([s for s, _ in pairs], dtype=torch.float32)
    quats = torch.tensor([q for _, q in pairs], dtype=torch.float32)
    means = torch.linspace(-2, 2, 3 * len(pairs)).reshape(-1, 3)
    return means, scales, quats


def covariances(scales: torch.Tensor, quats: torch.Tensor) -> torch.Tensor:
    """float64 R diag(s²) Rᵀ."""
    r = reference_rotations(quats)
    s = scales.to(torch.float64)
    return (r * (s * s).unsqueeze(-2)) @ r.transpose(-1, -2)


def relative_errors(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """Per-matrix ‖got - want‖_F / ‖want‖_F."""
    return (got - want).flatten(1).norm(dim=1) / want.flatten(1).norm(dim=1)


def assert_matches_reference(
    means: torch.Tensor, scales: torch.Tensor, quats: torch.Tensor, matrix: torch.Tensor
) -> None:
    fm, fs, fq = transform_gaussians(means, scales, quats, matrix)
    rm, rs, rq = reference_transform(means, scales, quats, matrix)
    for t in (fm, fs, fq):
        assert torch.isfinite(t).all()
    assert fs.dtype == torch.float32 and (fs >= 0).all()
    assert relative_errors(covariances(fs, fq), covariances(rs, rq)).max() <= COV_TOL
    q64 = fq.to(torch.float64)
    assert (q64.norm(dim=1) - 1).abs().max() <= 1e-6
    assert (q64[:, 0] >= 0).all()
    assert (torch.linalg.det(reference_rotations(q64)) - 1).abs().max() <= 1e-5
    scale = rm.abs().amax(dim=1, keepdim=True).clamp_min(1.0)
    assert ((fm.to(torch.float64) - rm).abs() / scale).max() <= 1e-6


@pytest.mark.parametrize("camera", CAMERAS.values(), ids=CAMERAS.keys())
def test_random_gaussians_match_the_svd_reference(camera: tuple[float, int, int]) -> None:
    assert_matches_reference(*random_set(20_000), unprojection_matrix(*camera))


@pytest.mark.parametrize("camera", CAMERAS.values(), ids=CAMERAS.keys())
def test_degenerate_gaussians_match_the_svd_reference(camera: tuple[float, int, int]) -> None:
    assert_matches_reference(*degenerate_set(), unprojection_matrix(*camera))


def test_a_general_affine_map_matches_the_reference() -> None:
    """The code path is general (not only diagonal): rotation + shear + translation."""
    g = torch.Generator().manual_seed(3)
    matrix = torch.cat([torch.randn(3, 3, generator=g) + 2 * torch.eye(3), torch.randn(3, 1)], 1)
    means, scales, quats = (torch.cat(p) for p in zip(random_set(5_000, 1), degenerate_set(), strict=True))
    assert_matches_reference(means, scales, quats, matrix)


def test_chunked_cpu_path_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    means, scales, quats = random_set(2_500, 2)
    matrix = unprojection_matrix(1000.0, 800, 600)
    whole = transform_gaussians(means, scales, quats, matrix)
    monkeypatch.setattr(geometry, "_CPU_CHUNK", 250)  # × threads: still several chunks
    chunked = transform_gaussians(means, scales, quats, matrix)
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_thin_axes_keep_their_relative_accuracy() -> None:
    """Variances come from ‖Bᵀv‖², so discs and needles 1e-4 thin keep a precise thickness.

    (Composing the covariance in float32 first, as ml-sharp does, loses such an axis entirely:
    its variance is 1e-8 of the largest, below float32 resolution.)
    """
    _, _, quats = random_set(4_000, 5)
    patterns = torch.tensor([[1.0, 1.0, 1e-4], [1.0, 1e-4, 1e-4], [1.0, 1e-2, 1e-4], [3.0, 3e-2, 3e-4]])
    scales = patterns.repeat(1000, 1)
    for matrix in (unprojection_matrix(1200.0, 4032, 3024), torch.eye(3, 4)):
        _, fs, _ = transform_gaussians(torch.zeros(4000, 3), scales, quats, matrix)
        _, rs, _ = reference_transform(torch.zeros(4000, 3), scales, quats, matrix)
        got, want = fs.to(torch.float64).sort(1).values, rs.sort(1).values
        assert ((got - want).abs() / want).max() <= 2e-5


def test_pathological_inputs_stay_finite() -> None:
    scales = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1e30, 1e-30, 1.0], [1e-38, 1e-38, 1e-38]])
    quats = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0], [1e-3, 0.0, 1e-3, 0.0], [0, 1, 0, 0.0]])
    means, s, q = transform_gaussians(torch.zeros(4, 3), scales, quats, unprojection_matrix(900.0, 800, 600))
    assert torch.isfinite(means).all() and torch.isfinite(s).all() and torch.isfinite(q).all()
    assert torch.allclose(q.norm(dim=1), torch.ones(4))
    assert s[0].abs().max() == 0.0 and s[2].max() > 1e29


@pytest.mark.parametrize("camera", CAMERAS.values(), ids=CAMERAS.keys())
def test_unprojection_matrix_is_the_diagonal_shortcut(camera: tuple[float, int, int]) -> None:
    f, w, h = camera
    got = unprojection_matrix(f, w, h)
    assert got.shape == (3, 4) and got.dtype == torch.float32
    # The general formula, independently in numpy: inv(ndc @ K_resized) with K's principal
    # point at the image centre and the 1536² resize scaling row 0 by 1536/w and row 1 by 1536/h.
    k = np.array([[f, 0, w / 2, 0], [0, f, h / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    k_resized = np.diag([1536 / w, 1536 / h, 1, 1]) @ k
    ndc = np.array([[2 / 1536, 0, -1, 0], [0, 2 / 1536, -1, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    general = np.linalg.inv(ndc @ k_resized)[:3]
    shortcut = np.zeros((3, 4))
    shortcut[0, 0], shortcut[1, 1], shortcut[2, 2] = w / (2 * f), h / (2 * f), 1.0
    np.testing.assert_allclose(general, shortcut, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.double().numpy(), shortcut, rtol=1e-7, atol=0)


def test_unproject_rejects_a_batch_of_several_images() -> None:
    means, scales, quats = random_set(10)
    ndc = Ndc(
        *(t.expand(2, -1, -1) for t in (means[None], scales[None], quats[None])),
        means[None],
        scales[None, :, 0],
    )
    with pytest.raises(ValueError, match="batch of one"):
        unproject(ndc, 1000.0, 800, 600)


def test_unproject_returns_metric_float32_gaussians() -> None:
    means, scales, quats = random_set(3_000, 7)
    colors, opacities = torch.rand(3_000, 3), torch.rand(3_000)
    ndc = Ndc(means[None], scales[None], quats[None], colors[None], opacities[None])
    f, w, h = CAMERAS["portrait"]
    got = unproject(ndc, f, w, h)
    want = reference_unproject(ndc, f, w, h)
    for name in ("means", "scales", "quaternions", "colors", "opacities"):
        arr = getattr(got, name)
        assert arr.dtype == np.float32 and arr.flags.c_contiguous
    np.testing.assert_array_equal(got.colors, colors.numpy())
    np.testing.assert_array_equal(got.opacities, opacities.numpy())
    np.testing.assert_allclose(got.means, means.numpy() * [w / (2 * f), h / (2 * f), 1], rtol=1e-6)
    np.testing.assert_allclose(got.means, want.means, rtol=1e-6)
    fast = covariances(torch.from_numpy(got.scales), torch.from_numpy(got.quaternions))
    ref = covariances(torch.from_numpy(want.scales), torch.from_numpy(want.quaternions))
    assert relative_errors(fast, ref).max() <= COV_TOL


def test_rotations_from_quaternions_including_half_turns() -> None:
    g = torch.Generator().manual_seed(13)
    h = 1 / math.sqrt(2)
    special = torch.tensor(
        [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0], [0, h, 0, h], [0, -h, h, 0]]
    )
    q = torch.cat([torch.randn(5000, 4, generator=g), special, -special])
    r = rotations_from_quaternions(q)
    torch.testing.assert_close(r.double(), reference_rotations(q), rtol=0, atol=1e-6)
