"""Photo-like JPEGs for the benchmarks: smooth shapes and light noise, not pure noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def photo(width: int, height: int, seed: int) -> np.ndarray:
    """An (H, W, 3) uint8 image with gradients, a few soft blobs and sensor-like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x /= width
    y /= height
    img = np.empty((height, width, 3), dtype=np.float32)
    for c in range(3):
        a, b, p = rng.uniform(0.5, 4.0, 3)
        img[..., c] = 0.5 + 0.25 * np.sin(a * 6.28 * x + p) * np.cos(b * 6.28 * y)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (r * r))
        img += blob[..., None] * rng.uniform(-0.4, 0.4, 3).astype(np.float32)
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_photos(folder: Path, count: int, width: int, height: int, quality: int = 90) -> list[Path]:
    """``count`` JPEGs IMG_0000.jpg… in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"IMG_{i:04d}.jpg"
        Image.fromarray(photo(width, height, seed=i)).save(path, format="JPEG", quality=quality)
        paths.append(path)
    return paths
