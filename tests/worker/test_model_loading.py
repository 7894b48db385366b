"""The fast load (meta device + mmap + assign) gives exactly the conventionally loaded model.

ml-sharp builds its network with random initialisation, ``torch.load``s the checkpoint and
copies it in with ``load_state_dict``; ``load_model`` skips both the initialisation and the
copy. Whatever the route, the weights, buffers and outputs must be identical.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from bench import large_model
from sharpmld.worker.model import load_model


def conventional(factory: object, checkpoint: Path) -> nn.Module:
    assert callable(factory)
    module: nn.Module = factory()
    module.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return module.eval()


def outputs(module: nn.Module, seed: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, 96, 128, generator=g)
    with torch.no_grad():
        out = module(image, torch.tensor([0.8]))
    names = ("mean_vectors", "singular_values", "quaternions", "colors", "opacities")
    return [getattr(out, name) for name in names]


def assert_same(fast: nn.Module, slow: nn.Module) -> None:
    fast_state, slow_state = fast.state_dict(), slow.state_dict()
    assert list(fast_state) == list(slow_state)
    for key, value in slow_state.items():
        assert torch.equal(fast_state[key], value), key
    for a, b in zip(outputs(fast), outputs(slow), strict=True):
        assert a.shape == b.shape
        assert torch.equal(a, b)


def test_assigned_model_equals_the_conventionally_loaded_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The benchmark's large model, shrunk: convolutions, batch-norm buffers, linear layers.
    monkeypatch.setenv(large_model.MB_ENV, "0.05")
    monkeypatch.setenv(large_model.WIDTH_ENV, "64")
    monkeypatch.setenv(large_model.SIDE_ENV, "8")
    checkpoint = tmp_path / "large.pt"
    large_model.write_checkpoint(checkpoint, seed=5)
    loaded = load_model("bench.large_model:create", checkpoint, "cpu")
    assert loaded.method == "meta+mmap+assign"
    assert not any(t.is_meta for t in [*loaded.module.parameters(), *loaded.module.buffers()])
    assert not loaded.module.training
    assert_same(loaded.module, conventional(large_model.create, checkpoint))


def test_tiny_sharp_loads_the_same_both_ways(checkpoint: Path) -> None:
    import tiny_sharp  # type: ignore[import-not-found]

    loaded = load_model("tiny_sharp:create", checkpoint, "cpu")
    assert loaded.method == "meta+mmap+assign"
    assert_same(loaded.module, conventional(tiny_sharp.create, checkpoint))


class WithDerivedBuffer(nn.Module):
    """A buffer computed in __init__ and not saved: the meta build cannot fill it."""

    offset: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.inner = large_model.create()
        self.register_buffer("offset", torch.linspace(0, 1, 4), persistent=False)

    def forward(self, image: torch.Tensor, disparity_factor: torch.Tensor) -> object:
        out = self.inner(image, disparity_factor)
        out.opacities = out.opacities * (1 - 0.01 * self.offset[1])
        return out


def make_with_derived_buffer() -> WithDerivedBuffer:
    return WithDerivedBuffer()


def test_a_model_the_fast_path_cannot_fill_falls_back_and_still_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(large_model.MB_ENV, "0.05")
    monkeypatch.setenv(large_model.WIDTH_ENV, "32")
    monkeypatch.setenv(large_model.SIDE_ENV, "8")
    checkpoint = tmp_path / "derived.pt"
    torch.manual_seed(11)
    torch.save(WithDerivedBuffer().state_dict(), checkpoint)
    loaded = load_model(f"{__name__}:make_with_derived_buffer", checkpoint, "cpu")
    assert loaded.method == "conventional"
    assert_same(loaded.module, conventional(make_with_derived_buffer, checkpoint))
