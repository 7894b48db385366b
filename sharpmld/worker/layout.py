"""Keeping ml-sharp's feature network channels-last where its own code turns it back to NCHW.

In half precision on the CPU the network runs channels-last (``model.half_memory_format``),
but ml-sharp's feature network makes its decoder's output ``contiguous()``, which is NCHW
again, just before its 128-channel fusion block at half the internal resolution: the block
where the bf16 network peaks. oneDNN's bf16 convolutions given NCHW reorder into temporaries,
so that block alone at 384 x 384 peaked at 5.0-5.2 input-sized buffers fed an NCHW first input
against 4.0 with both inputs channels-last, and its outputs were bit-identical either way. On
the whole bf16 network that stage then peaked at 3.33 GiB, below the monodepth decoder's 3.55
(bench/RESULTS.md), so the network's peak now lies elsewhere.

The decoder's output passes through ``feature_model.upsample`` (an identity at SHARP's
output stride) on its way to the fusion block; a forward hook there hands on a channels-last
copy, and the NCHW one is freed as soon as the copy exists. Models without that module (the
tests' stand-ins, a custom ``[model] factory``) are left as they are.
"""

from __future__ import annotations

from typing import Any

import torch

FEATURE_UPSAMPLE = "feature_model.upsample"


def _to_channels_last(_module: torch.nn.Module, _args: Any, output: Any) -> Any:
    if isinstance(output, torch.Tensor) and output.dim() == 4:
        return output.contiguous(memory_format=torch.channels_last)
    return output


def keep_channels_last(module: torch.nn.Module) -> bool:
    """Make ml-sharp's feature network feed its fusion block channels-last; whether ``module``
    had the place to do it (``feature_model.upsample``)."""
    try:
        upsample = module.get_submodule(FEATURE_UPSAMPLE)
    except AttributeError:
        return False
    upsample.register_forward_hook(_to_channels_last)
    return True
