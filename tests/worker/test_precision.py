"""``[model] precision``: the network runs in half precision, the geometry and files in fp32.

The stand-in model is small, so these check dtypes and closeness, not memory; the memory and
the deviation of the real network are measured in ``bench/precision_bench.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from plyfile import PlyData

from bench import large_model
from sharpmld.core.config import validate
from sharpmld.core.errors import ConfigError, EngineUnavailable
from sharpmld.formats.gaussians import SceneMeta
from sharpmld.formats.ply import to_vertex_records
from sharpmld.formats.registry import DEFAULT_OPTIONS, FORMATS
from sharpmld.protocol import ImageTask, JobRequest
from sharpmld.queue import cache_index as cache
from sharpmld.worker import model as model_mod
from sharpmld.worker.decode import load_image
from sharpmld.worker.geometry import unproject
from sharpmld.worker.model import LoadedModel, load_model
from sharpmld.worker.pipeline import decode, infer, prepare_input

HALF = ("fp16", "bf16")


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(11)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 200, (96, 128, 3), dtype=np.uint8)).save(path)
    return path


def _load(checkpoint: Path, precision: str) -> LoadedModel:
    return load_model("tiny_sharp:create", checkpoint, "cpu", precision)


def test_precision_is_validated_naming_the_key_and_the_choices() -> None:
    assert validate({"model": {"precision": "bf16"}}, "t")["model"]["precision"] == "bf16"
    with pytest.raises(ConfigError) as err:
        validate({"model": {"precision": "fp8"}}, "t")
    assert "model.precision" in err.value.message
    assert "fp32, fp16, bf16" in err.value.message


@pytest.mark.parametrize("precision", ["fp32", *HALF])
def test_parameters_have_the_dtype_and_outputs_reaching_geometry_are_fp32(
    checkpoint: Path, photo: Path, precision: str
) -> None:
    loaded = _load(checkpoint, precision)
    wanted = model_mod.DTYPES[precision]
    assert loaded.dtype == wanted
    assert {p.dtype for p in loaded.module.parameters()} == {wanted}
    ndc = infer(loaded, load_image(photo, max_pixels_side=8000))
    for name in model_mod.NDC_FIELDS:
        assert getattr(ndc, name).dtype == torch.float32, name


@pytest.mark.parametrize("precision", HALF)
def test_half_precision_gaussians_are_close_to_fp32_and_files_stay_fp32(
    checkpoint: Path, photo: Path, tmp_path: Path, precision: str
) -> None:
    image = load_image(photo, max_pixels_side=8000)
    full = unproject(infer(_load(checkpoint, "fp32"), image), image.f_px, image.width, image.height)
    half = unproject(infer(_load(checkpoint, precision), image), image.f_px, image.width, image.height)
    # fp16 keeps 11 significant bits, bf16 8: a few units of 2^-8 relative error at most.
    rtol = 2e-3 if precision == "fp16" else 1.6e-2
    for name in ("means", "scales", "colors", "opacities"):
        a, b = getattr(full, name), getattr(half, name)
        assert a.dtype == b.dtype == np.float32, name
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * float(np.abs(a).max()), err_msg=name)
    assert not np.array_equal(half.means, full.means)  # it really ran in another precision

    meta = SceneMeta(f_px=image.f_px, width=image.width, height=image.height)
    FORMATS["ply"].write(tmp_path / "half.ply", to_vertex_records(half), meta, DEFAULT_OPTIONS)
    vertex = PlyData.read(str(tmp_path / "half.ply"))["vertex"]
    assert {vertex.data.dtype[name] for name in ("x", "y", "z", "opacity")} == {np.dtype("<f4")}


def test_a_precision_the_device_cannot_run_fails_the_start_by_name(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = torch.nn.functional.conv2d

    def no_half_conv(x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        # As a backend without the kernel answers (e.g. "not implemented for 'Half'").
        if x.dtype == torch.float16:
            raise RuntimeError("\"slow_conv2d_cpu\" not implemented for 'Half'")
        return real(x, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch.nn.functional, "conv2d", no_half_conv)
    with pytest.raises(EngineUnavailable) as err:
        _load(checkpoint, "fp16")
    assert "precision = 'fp16'" in err.value.message and "'cpu'" in err.value.message
    assert _load(checkpoint, "bf16").dtype == torch.bfloat16


def test_cache_key_differs_by_precision_and_fp32_keeps_the_old_key() -> None:
    common = {"checkpoint_sha256": "ab", "factory": "sharp", "formats": ["ply"], "f_px_override": None}
    keys = {p: cache.salt(**common, precision=p) for p in ("fp32", *HALF)}
    assert len(set(keys.values())) == 3
    assert keys["fp32"] == cache.salt(**common)


@pytest.mark.parametrize("precision", ["fp32", *HALF])
def test_half_precision_on_the_cpu_runs_convolutions_channels_last(
    tmp_path: Path, photo: Path, monkeypatch: pytest.MonkeyPatch, precision: str
) -> None:
    monkeypatch.setenv(large_model.MB_ENV, "0.05")
    monkeypatch.setenv(large_model.WIDTH_ENV, "64")
    monkeypatch.setenv(large_model.SIDE_ENV, "8")
    checkpoint = tmp_path / "large.pt"
    large_model.write_checkpoint(checkpoint, seed=5)
    loaded = load_model("bench.large_model:create", checkpoint, "cpu", precision)
    wanted = torch.contiguous_format if precision == "fp32" else torch.channels_last
    seen: list[torch.Tensor] = []
    loaded.module.register_forward_pre_hook(lambda _module, args: seen.append(args[0]))

    ndc = infer(loaded, load_image(photo, max_pixels_side=8000))

    conv = loaded.module.stem[0].weight
    assert conv.is_contiguous(memory_format=wanted)
    assert seen[0].dtype == model_mod.DTYPES[precision]
    assert seen[0].is_contiguous(memory_format=wanted)
    if precision != "fp32":
        assert not seen[0].is_contiguous()  # really another layout, not a 1-channel tensor
    assert ndc.mean_vectors.dtype == torch.float32


@pytest.mark.parametrize("precision", ["fp32", *HALF])
def test_the_model_is_fed_the_prepared_input_itself_with_no_fp32_copy_kept(
    checkpoint: Path, photo: Path, precision: str
) -> None:
    loaded = _load(checkpoint, precision)
    image = load_image(photo, max_pixels_side=8000)
    prepared = prepare_input(image, loaded.device, loaded.dtype, loaded.memory_format)
    assert prepared[0].dtype == loaded.dtype
    fed: list[torch.Tensor] = []
    loaded.module.register_forward_pre_hook(lambda _module, args: fed.append(args[0]))

    ndc = infer(loaded, image, prepared)

    # The forward pass gets the prepared tensor, not a second copy made beside an fp32 one.
    assert fed[0].data_ptr() == prepared[0].data_ptr()
    # And the Gaussians are those of resizing in fp32 and casting after, as before.
    resized, disparity_factor = prepare_input(image, loaded.device)
    assert resized.dtype == torch.float32
    pixels = resized.to(dtype=loaded.dtype, memory_format=loaded.memory_format)
    with torch.no_grad():
        old = loaded.module(pixels, disparity_factor.to(loaded.dtype))
    assert torch.equal(ndc.mean_vectors, old.mean_vectors.float())
    assert torch.equal(ndc.colors, old.colors.float())


def test_decode_ahead_prepares_the_input_in_the_models_dtype(checkpoint: Path, photo: Path) -> None:
    loaded = _load(checkpoint, "bf16")
    task = ImageTask("photo.png", str(photo), "photo")
    request = JobRequest("j", str(photo.parent), (task,))
    decoded = decode(task, photo.parent, request, loaded.device, loaded.dtype, loaded.memory_format)
    assert decoded.model_input is not None
    assert decoded.model_input[0].dtype == torch.bfloat16
    assert decoded.model_input[1].dtype == torch.float32
