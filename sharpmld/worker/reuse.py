"""The worker's side of the output cache: reuse an earlier job's files instead of the model."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sharpmld.queue import cache_index as cache


def pixels_sha256(rgb: npt.NDArray[np.uint8]) -> str:
    """The hash of an image as the model sees it: upright pixels, no metadata, its shape."""
    digest = hashlib.sha256(f"{rgb.shape}".encode())
    digest.update(np.ascontiguousarray(rgb).data)
    return digest.hexdigest()


def renamed(rel: str, old_stem: str, new_stem: str) -> str:
    """``images/old.png`` -> ``images/new.png``: an output's path for another stem."""
    path = Path(rel)
    name = path.name
    if name.startswith(old_stem):
        name = new_stem + name[len(old_stem) :]
    return str(path.parent / name) if str(path.parent) != "." else name


def reuse(entry: dict[str, Any], job_dir: Path, stem: str) -> dict[str, Any]:
    """Link every output of a cache entry into ``job_dir`` under ``stem``; the result entry."""
    outputs: dict[str, Any] = {}
    for name, item in entry["outputs"].items():
        rel = renamed(item["rel"], entry["stem"], stem)
        target = job_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        cache.link_or_copy(Path(item["path"]), target)
        outputs[name] = {"path": rel, "bytes": item["bytes"], "sha256": item["sha256"]}
    keep = ("gaussians", "width", "height", "f_px", "f_px_source", "orientation", "format")
    return {
        **{k: entry[k] for k in keep if k in entry},
        "outputs": outputs,
        "cached": True,
        "cached_from": entry.get("job_id"),
    }


class CacheReader:
    """One job's view of the output cache.

    A cache the worker cannot read (another user's files, a read-only folder) must never cost
    the image: every such failure is a miss, and the first one is reported through ``warn`` so
    the daemon logs it once per job rather than once per image.
    """

    def __init__(self, cache_dir: str | None, warn: Callable[[str], None]) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._warn = warn
        self._warned = False

    def fetch(self, key: str, job_dir: Path, stem: str) -> dict[str, Any] | None:
        """The result entry of the cached outputs for ``key``, linked into ``job_dir``; or None."""
        if self.cache_dir is None or not key:
            return None
        try:
            hit = cache.lookup(self.cache_dir, key)
            return reuse(hit, job_dir, stem) if hit is not None else None
        except OSError as exc:
            if not self._warned:
                self._warned = True
                self._warn(f"the output cache cannot be read, so images are computed again: {exc}")
            return None
