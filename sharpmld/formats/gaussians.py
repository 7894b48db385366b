"""The in-memory scene every output format is written from, as plain numpy arrays.

Formats live outside the worker's torch world so that `sharpmld convert` and the tests can
read and write files without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class SceneMeta:
    """The camera the scene was seen from: what ml-sharp stores beside the Gaussians."""

    f_px: float
    width: int
    height: int


@dataclass(frozen=True)
class Gaussians:
    """N metric-space 3D Gaussians.

    ``scales`` are the linear standard deviations along the principal axes (ml-sharp's
    ``singular_values``), ``quaternions`` are (w, x, y, z) and ``colors`` linear RGB in [0, 1],
    exactly as SHARP predicts them; each format applies its own encoding on the way out.
    """

    means: F32
    scales: F32
    quaternions: F32
    colors: F32
    opacities: F32

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expected = {
            "means": (n, 3),
            "scales": (n, 3),
            "quaternions": (n, 4),
            "colors": (n, 3),
            "opacities": (n,),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if value.shape != shape:
                raise ValueError(f"{name} has shape {value.shape}, expected {shape}")

    def __len__(self) -> int:
        return int(self.means.shape[0])
