"""The SHARP adapter: build the network, load the checkpoint, pick the device.

By default this is ml-sharp's own predictor. ``[model] factory = "package.module:function"``
names any zero-argument callable returning a ``torch.nn.Module`` with the same forward
contract; that is how the tests run a small model from a checkpoint they write.

Loading avoids the two slow steps of ml-sharp's CLI: the network is built on the ``meta``
device (no random initialisation) and the checkpoint is memory-mapped and assigned rather than
copied. If a model does not survive that (a buffer the checkpoint does not hold), it is built
and loaded the conventional way instead.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sharpmld.core.config import CHECKPOINT_URL, SHARP_INSTALL
from sharpmld.core.errors import EngineUnavailable
from sharpmld.worker.halfcast import cast_one_by_one
from sharpmld.worker.layout import keep_channels_last


@dataclass(frozen=True)
class LoadedModel:
    """A ready model and the facts ``result.json`` and the metrics report about it."""

    module: torch.nn.Module
    device: torch.device
    load_seconds: float
    method: str
    dtype: torch.dtype = torch.float32
    memory_format: torch.memory_format = torch.contiguous_format


def select_device(name: str) -> torch.device:
    """``auto`` prefers MPS, then CUDA, then the CPU; an explicit choice must be available."""
    if name == "auto":
        if torch.backends.mps.is_available():
            return torch.device("mps")
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise EngineUnavailable("device 'mps' was asked for but Metal is not available here")
    if name == "cuda" and not torch.cuda.is_available():
        raise EngineUnavailable("device 'cuda' was asked for but CUDA is not available here")
    return torch.device(name)


def resolve_factory(spec: str) -> Callable[[], torch.nn.Module]:
    """The callable behind ``[model] factory``; import problems become EngineUnavailable."""
    if spec == "sharp":
        try:
            models: Any = importlib.import_module("sharp.models")
        except ImportError as exc:
            raise EngineUnavailable(
                f"ml-sharp is not installed for this worker's Python ({exc}). "
                f"Install it with: {SHARP_INSTALL}"
            ) from None

        def build_sharp() -> torch.nn.Module:
            module: torch.nn.Module = models.create_predictor(models.PredictorParams())
            return module

        return build_sharp
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise EngineUnavailable(f"model factory {spec!r} cannot be imported: {exc}") from None
    if not callable(factory):
        raise EngineUnavailable(f"model factory {spec!r} is not callable")
    return factory  # type: ignore[no-any-return]


def _read_state_dict(checkpoint: Path, mmap: bool) -> dict[str, torch.Tensor]:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=mmap)
    if not isinstance(state, dict):
        raise EngineUnavailable(f"checkpoint {checkpoint} does not hold a state dict")
    return state


# `[model] precision` -> the dtype of the network's weights and activations.
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def check_precision(precision: str, device: torch.device) -> torch.dtype:
    """The dtype for ``precision``, after running the network's kinds of op in it on ``device``.

    Half-precision kernels are missing for some ops on some backends (bf16 on older MPS, fp16
    on older CPUs' builds), and a network that silently fell back to fp32 would cost the memory
    the setting exists to save; so an unsupported pair fails the worker's start, by name.
    """
    if precision not in DTYPES:
        raise EngineUnavailable(f"[model] precision {precision!r} is not one of {', '.join(DTYPES)}")
    dtype = DTYPES[precision]
    if dtype == torch.float32:
        return dtype
    try:
        with torch.no_grad():
            x = torch.rand(1, 4, 8, 8, device=device).to(dtype)
            y = torch.nn.functional.conv2d(x, torch.ones(4, 4, 3, 3, device=device, dtype=dtype))
            y = torch.nn.functional.interpolate(y, size=(4, 4), mode="bilinear", align_corners=True)
            z = torch.nn.functional.layer_norm(y.flatten(1), (y[0].numel(),)) @ torch.ones(
                y[0].numel(), 2, device=device, dtype=dtype
            )
            torch.nn.functional.gelu(z).softmax(-1).sum().item()
    except (RuntimeError, TypeError, NotImplementedError) as exc:
        raise EngineUnavailable(
            f"[model] precision = {precision!r} is not supported on device {device.type!r} "
            f"by this torch ({torch.__version__}): {str(exc).splitlines()[0]}. "
            'Set precision = "fp32", or another of fp16 and bf16.'
        ) from None
    return dtype


def load_model(factory_spec: str, checkpoint: Path, device_name: str, precision: str = "fp32") -> LoadedModel:
    """Build the network and load the checkpoint onto the chosen device (strict), in the
    dtype ``precision`` names (the weights are cast once, here, not per image)."""
    start = time.perf_counter()
    if device_name in ("auto", "mps"):
        os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
    device = select_device(device_name)
    dtype = check_precision(precision, device)
    factory = resolve_factory(factory_spec)
    if not checkpoint.is_file():
        raise EngineUnavailable(
            f"the checkpoint {checkpoint} does not exist. Download it with: "
            f'curl -L --create-dirs -o "{checkpoint}" {CHECKPOINT_URL}'
        )
    try:
        module, method = _load_fast(factory, checkpoint)
    except EngineUnavailable:
        raise
    except Exception:
        module, method = _load_conventional(factory, checkpoint)
    if dtype != torch.float32:
        cast_one_by_one(module, dtype, checkpoint)
    memory_format = half_memory_format(dtype, device)
    module.eval().to(device=device, dtype=dtype, memory_format=memory_format)
    if memory_format == torch.channels_last:
        keep_channels_last(module)
    return LoadedModel(module, device, time.perf_counter() - start, method, dtype, memory_format)


def half_memory_format(dtype: torch.dtype, device: torch.device) -> torch.memory_format:
    """Channels-last for half precision on the CPU, the default layout otherwise.

    oneDNN's bf16 convolutions given NCHW tensors reorder them into temporaries: ml-sharp's
    128-channel fusion block (where the bf16 network peaks), run alone at 384 x 384, peaked at
    6.05 input-sized buffers in bf16 NCHW, 4.03 channels-last (fp32 NCHW: 5.16). On the whole
    network the gain was small until ml-sharp's one return to NCHW before that block was
    undone too (``layout.keep_channels_last``; figures in RESULTS.md).
    fp32 keeps ml-sharp's layout, and GPUs are left alone (not measured there).
    """
    if dtype != torch.float32 and device.type == "cpu":
        return torch.channels_last
    return torch.contiguous_format


def _load_fast(factory: Callable[[], torch.nn.Module], checkpoint: Path) -> tuple[Any, str]:
    with torch.device("meta"):
        module = factory()
    state = _read_state_dict(checkpoint, mmap=True)
    _load_strict(module, state, checkpoint, assign=True)
    tensors = [*module.parameters(), *module.buffers()]
    if any(t.is_meta for t in tensors):
        raise RuntimeError("tensors left on the meta device")
    return module, "meta+mmap+assign"


def _load_conventional(factory: Callable[[], torch.nn.Module], checkpoint: Path) -> tuple[Any, str]:
    module = factory()
    try:
        state = _read_state_dict(checkpoint, mmap=False)
    except EngineUnavailable:
        raise
    except Exception as exc:
        raise EngineUnavailable(f"checkpoint {checkpoint} cannot be read: {exc}") from None
    _load_strict(module, state, checkpoint, assign=False)
    return module, "conventional"


def _load_strict(
    module: torch.nn.Module, state: dict[str, torch.Tensor], checkpoint: Path, *, assign: bool
) -> None:
    try:
        module.load_state_dict(state, strict=True, assign=assign)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0:3]
        raise EngineUnavailable(
            f"checkpoint {checkpoint} does not match the model: {' '.join(first)}"
        ) from None


NDC_FIELDS = ("mean_vectors", "singular_values", "quaternions", "colors", "opacities")


@dataclass(frozen=True)
class Float32Ndc:
    """The network's NDC Gaussians, each field in fp32 (ml-sharp returns a NamedTuple)."""

    mean_vectors: torch.Tensor
    singular_values: torch.Tensor
    quaternions: torch.Tensor
    colors: torch.Tensor
    opacities: torch.Tensor


def to_float32(ndc: Any) -> Float32Ndc:
    """The network's output in fp32: the unprojection, the covariance and quaternion maths and
    the files are fp32 whatever precision the network ran in."""
    return Float32Ndc(*(getattr(ndc, name).float() for name in NDC_FIELDS))
