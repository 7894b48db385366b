"""A large benchmark model (hundreds of MB of float32 weights) with SHARP's forward contract.

A convolutional stem with batch-norm buffers reads the image, a stack of ``width × width``
linear layers holds most of the weights, and the head modulates the output of a (non-sleeping)
:class:`bench.sleepy_model.SleepyModel`, so the Gaussians depend on every loaded weight.

Sizes come from the environment, because ``[model] factory`` names a zero-argument callable:
``BENCH_LARGE_MB`` (weights in MiB, default 600), ``BENCH_LARGE_WIDTH`` (default 4096) and
``BENCH_LARGE_SIDE`` (output grid side, default 64).

``python -m bench.large_model measure --method conventional|ours --checkpoint PATH [--forward]``
loads it in a fresh process and prints one JSON line: times and resident-memory figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

MB_ENV, WIDTH_ENV, SIDE_ENV = "BENCH_LARGE_MB", "BENCH_LARGE_WIDTH", "BENCH_LARGE_SIDE"


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


_CLASS: Any = None


def _define() -> Any:
    """The model class, defined on first use so that ``measure`` can time ``import torch``."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    import torch
    import torch.nn.functional as F
    from torch import nn

    from bench.scene import NdcGaussians
    from bench.sleepy_model import SleepyModel

    class LargeModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            size_mb = float(os.environ.get(MB_ENV, "600"))
            width = int(os.environ.get(WIDTH_ENV, "4096"))
            depth = max(1, round(size_mb * (1 << 20) / (4 * width * (width + 1))))
            self.stem = nn.Sequential(
                nn.Conv2d(3, 32, 8, stride=8),
                nn.BatchNorm2d(32),
                nn.GELU(),
                nn.Conv2d(32, 64, 4, stride=4),
                nn.BatchNorm2d(64),
                nn.GELU(),
            )
            self.proj = nn.Linear(64, width)
            self.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
            self.head = nn.Linear(width, 4)
            self.gaussians = SleepyModel(0.0, int(os.environ.get(SIDE_ENV, "64")))

        def forward(self, image: torch.Tensor, disparity_factor: torch.Tensor) -> NdcGaussians:
            small = F.interpolate(image, size=(256, 256), mode="bilinear", align_corners=False)
            x = self.proj(self.stem(small).mean((2, 3)))
            for block in self.blocks:
                x = x + F.gelu(block(x)) / len(self.blocks)
            mod = torch.tanh(self.head(x))[0] * 0.05  # [4]
            out: NdcGaussians = self.gaussians(image, disparity_factor)
            out.mean_vectors = out.mean_vectors * (1 + mod[0])
            out.singular_values = out.singular_values * torch.exp(mod[1])
            out.opacities = (out.opacities + mod[2]).clamp(0.01, 0.99)
            return out

    _CLASS = LargeModel
    return LargeModel


def create() -> Any:
    """The factory for ``[model] factory = "bench.large_model:create"``."""
    return _define()()


def write_checkpoint(path: Path, seed: int = 0) -> int:
    """Save a randomly initialised model's state dict; returns the file's size in bytes."""
    import torch

    torch.manual_seed(seed)
    model = create().eval()
    with torch.no_grad():  # give the batch-norm buffers values the defaults do not have
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    torch.save(model.state_dict(), path)
    return path.stat().st_size


def _sample_input() -> tuple[Any, Any]:
    import torch

    g = torch.Generator().manual_seed(7)
    return torch.rand(1, 3, 1536, 1536, generator=g), torch.tensor([0.9])


def load_conventional(checkpoint: Path) -> Any:
    """ml-sharp's way: build with random initialisation, torch.load, load_state_dict."""
    import torch

    model = create()
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def measure(method: str, checkpoint: Path, forward: bool) -> dict[str, Any]:
    """Load in this (fresh) process; times and resident memory in MiB."""
    t0 = time.perf_counter()
    import torch

    from sharpmld.worker.model import load_model

    _define()
    out: dict[str, Any] = {"import_s": time.perf_counter() - t0, "rss_after_import_mb": _status_mb("VmRSS")}
    start = time.perf_counter()
    if method == "conventional":
        model = load_conventional(checkpoint)
        out["method"] = "conventional"
    else:
        loaded = load_model("bench.large_model:create", checkpoint, "cpu")
        model, out["method"] = loaded.module, loaded.method
    out["ready_s"] = time.perf_counter() - start
    out["peak_rss_ready_mb"] = _status_mb("VmHWM")
    out["rss_ready_mb"] = _status_mb("VmRSS")
    if forward:
        image, disparity = _sample_input()
        start = time.perf_counter()
        with torch.no_grad():
            model(image, disparity)
        out["forward_s"] = time.perf_counter() - start
        out["peak_rss_forward_mb"] = _status_mb("VmHWM")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.large_model")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("measure")
    p.add_argument("--method", choices=["conventional", "ours"], required=True)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--forward", action="store_true")
    p = sub.add_parser("write")
    p.add_argument("checkpoint", type=Path)
    args = parser.parse_args(argv)
    if args.command == "write":
        print(json.dumps({"bytes": write_checkpoint(args.checkpoint)}))
    else:
        print(json.dumps(measure(args.method, args.checkpoint, args.forward)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
