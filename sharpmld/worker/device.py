"""What the worker asks of the accelerator besides the model: wait for it, free its cache,
read its memory. One place, so that a test can put a fake backend in (``BACKENDS``).

Why all accelerator work happens on one thread: PyTorch's MPS backend is not safe to use from
several threads at once: tensor ops from two Python threads abort the process inside Metal
(exit 134, no Python exception), reproduced on torch 2.14.0 in pytorch/pytorch#197805. A
worker that resized images on the decode thread and unprojected on the write thread while
the model ran would die on a Mac on any job of two photos. So the pipeline keeps every
accelerator operation on the model's thread (``pipeline.run_job``); on the CPU the other
threads may still compute, which keeps decode-ahead and write-behind overlapping there.

Timing: accelerator calls return before the work is done, so a stage's timer is read only
after ``synchronize`` (torch.mps.synchronize / torch.cuda.synchronize), or the GPU's time
would be counted in whichever stage next waits for a result.
"""

from __future__ import annotations

from typing import Any

import torch

BACKENDS: dict[str, Any] = {"mps": torch.mps, "cuda": torch.cuda}


def on_one_thread(device: torch.device) -> bool:
    """Whether work on ``device`` must stay on the model's thread (any accelerator)."""
    return device.type != "cpu"


def synchronize(device: torch.device) -> None:
    """Wait until the accelerator has finished what was queued (a no-op on the CPU)."""
    backend = BACKENDS.get(device.type)
    if backend is not None:
        backend.synchronize()


def empty_cache(device: torch.device) -> None:
    """Give the allocator's cached blocks back, so an idle worker does not keep its peak."""
    backend = BACKENDS.get(device.type)
    if backend is not None:
        backend.empty_cache()


def allocated_bytes(device: torch.device) -> int | None:
    """Bytes the accelerator's allocator holds for tensors now (None on the CPU)."""
    backend = BACKENDS.get(device.type)
    if backend is None:
        return None
    if device.type == "mps":
        return int(backend.current_allocated_memory())
    return int(backend.memory_allocated())
