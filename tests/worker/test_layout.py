"""Half precision on the CPU keeps ml-sharp's fusion block channels-last, with the same result.

The stand-in has the part of ml-sharp's feature network that turns channels-last back into
NCHW (``contiguous()`` before an identity ``upsample``); the memory this saves on the real
network is measured in ``bench/precision_bench.py`` (bench/RESULTS.md).
"""

from __future__ import annotations

from pathlib import Path

import fusion_sharp
import numpy as np
import pytest
import tiny_sharp
import torch
from PIL import Image

from sharpmld.worker import model as model_mod
from sharpmld.worker.decode import load_image
from sharpmld.worker.layout import keep_channels_last
from sharpmld.worker.model import load_model
from sharpmld.worker.pipeline import infer


@pytest.fixture(scope="module")
def fusion_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fusion") / "fusion.pt"
    fusion_sharp.write_checkpoint(path)
    return path


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 220, (64, 96, 3), dtype=np.uint8)).save(path)
    return path


def _run(checkpoint: Path, photo: Path, precision: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The positions, and what the fusion block was fed."""
    loaded = load_model("fusion_sharp:create", checkpoint, "cpu", precision)
    fed: list[torch.Tensor] = []
    fusion = loaded.module.get_submodule("feature_model.fusion")
    fusion.register_forward_pre_hook(lambda _module, args: fed.append(args[0]))
    return infer(loaded, load_image(photo, max_pixels_side=8000)).mean_vectors, fed


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_feeds_the_fusion_block_channels_last_with_identical_gaussians(
    fusion_checkpoint: Path, photo: Path, monkeypatch: pytest.MonkeyPatch, precision: str
) -> None:
    kept, fed = _run(fusion_checkpoint, photo, precision)
    assert fed[0].is_contiguous(memory_format=torch.channels_last)
    assert not fed[0].is_contiguous()

    monkeypatch.setattr(model_mod, "keep_channels_last", lambda _module: False)
    before, fed_before = _run(fusion_checkpoint, photo, precision)
    assert fed_before[0].is_contiguous()  # the stand-in does turn it back, as ml-sharp does
    assert torch.equal(kept, before)


def test_fp32_keeps_ml_sharps_own_layout(fusion_checkpoint: Path, photo: Path) -> None:
    _, fed = _run(fusion_checkpoint, photo, "fp32")
    assert fed[0].is_contiguous()
    assert not fed[0].is_contiguous(memory_format=torch.channels_last)


def test_a_model_without_ml_sharps_feature_network_is_left_alone() -> None:
    model = tiny_sharp.TinySharp()
    assert keep_channels_last(model) is False
    assert not model._forward_hooks and not any(m._forward_hooks for m in model.modules())
