"""A small stand-in for SHARP with the same forward contract, for tests and benchmarks.

It places one Gaussian per cell of a GRID x GRID pooling of the input, coloured like that cell,
at a depth set by a weight, so its output is predictable and depends on the loaded checkpoint.

Test hooks (read from the environment of the worker, so a test can provoke a misbehaving
engine without a special build): an input whose top-left pixel is pure magenta makes the
forward pass kill its process; pure cyan makes it hang; pure yellow makes it allocate memory
until stopped. ``TINY_SHARP_SLEEP`` adds a fixed delay to every forward pass.
``TINY_SHARP_HOLD`` names a folder: each forward pass says so there (``<pid>.running``) and
then waits while a file ``hold`` exists in it, so a test can kill or pause a worker that is
known to be mid-inference, and let the pass go on by removing the file.
``TINY_SHARP_GATE=DIR`` holds each forward pass until the test lets it go: pass number N
(counted across worker processes) creates ``DIR/called-N`` and waits for ``DIR/go-N`` or
``DIR/open``, so a test sees a job mid-photo for as long as it needs, with no timing guess.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

GRID = int(os.environ.get("TINY_SHARP_GRID", "32"))
CALLS_LOG = os.environ.get("TINY_SHARP_CALLS")


@dataclass
class NdcGaussians:
    """The shape of ml-sharp's ``Gaussians3D``: five batched tensors."""

    mean_vectors: torch.Tensor
    singular_values: torch.Tensor
    quaternions: torch.Tensor
    colors: torch.Tensor
    opacities: torch.Tensor


class TinySharp(nn.Module):
    """GRID x GRID Gaussians from an image: position from the pixel grid, colour from the pixels."""

    def __init__(self, grid: int = GRID) -> None:
        super().__init__()
        self.grid = grid
        self.depth = nn.Parameter(torch.ones(1))
        self.log_scale = nn.Parameter(torch.full((3,), -4.0))
        self.rotation = nn.Parameter(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.opacity_logit = nn.Parameter(torch.zeros(1))
        self.register_buffer("gamma", torch.tensor(2.2))

    def forward(self, image: torch.Tensor, disparity_factor: torch.Tensor) -> NdcGaussians:
        _misbehave(image)
        if CALLS_LOG:
            # Pixel (0, 1) carries a tag the test chose; at 1536 x 1536 the resize is exact.
            tag = "-".join(str(round(float(c) * 255)) for c in image[0, :, 0, 1])
            with open(CALLS_LOG, "a") as f:
                f.write(f"{os.getpid()} {tag}\n")
        g = self.grid
        pooled = F.adaptive_avg_pool2d(image, (g, g))  # [1,3,g,g]
        colors = pooled.clamp(0, 1).pow(self.gamma).flatten(2).transpose(1, 2)  # linear RGB
        v, u = torch.meshgrid(
            (torch.arange(g, dtype=image.dtype, device=image.device) + 0.5) / g * 2 - 1,
            (torch.arange(g, dtype=image.dtype, device=image.device) + 0.5) / g * 2 - 1,
            indexing="ij",
        )
        z = self.depth * (1.0 + 0.5 * pooled.mean(1, keepdim=False).flatten(1)) / disparity_factor
        z = z.reshape(1, g * g)
        means = torch.stack([u.flatten()[None] * z, v.flatten()[None] * z, z], dim=-1)
        n = g * g
        scales = self.log_scale.exp().expand(1, n, 3) * z[..., None]
        quats = F.normalize(self.rotation, dim=0).expand(1, n, 4)
        opacities = torch.sigmoid(self.opacity_logit).expand(1, n)
        return NdcGaussians(means, scales.contiguous(), quats.contiguous(), colors, opacities)


def _probe_network() -> None:
    """With TINY_SHARP_NET_PROBE=port:file, record whether 127.0.0.1:port can be reached."""
    spec = os.environ.get("TINY_SHARP_NET_PROBE")
    if not spec:
        return
    import socket

    port, _, record = spec.partition(":")
    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=2):
            outcome = "reached"
    except OSError as exc:
        outcome = f"refused {type(exc).__name__}"
    with open(record, "a") as f:
        f.write(outcome + "\n")


def _hold() -> None:
    folder = os.environ.get("TINY_SHARP_HOLD")
    if not folder:
        return
    with open(os.path.join(folder, f"{os.getpid()}.running"), "a") as f:
        f.write("forward\n")
    while os.path.exists(os.path.join(folder, "hold")):
        time.sleep(0.02)  # the model's own pause, polled; the test waits on files, not time


def _hold_at_gate() -> None:
    """With TINY_SHARP_GATE set, take the next pass number and wait until it is let through."""
    gate = os.environ.get("TINY_SHARP_GATE")
    if not gate:
        return
    n = 1
    while True:
        try:
            os.close(os.open(os.path.join(gate, f"called-{n}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL))
            break
        except FileExistsError:
            n += 1
    go, everyone = os.path.join(gate, f"go-{n}"), os.path.join(gate, "open")
    while not (os.path.exists(go) or os.path.exists(everyone)):
        time.sleep(0.02)


def _misbehave(image: torch.Tensor) -> None:
    _probe_network()
    _hold()
    _hold_at_gate()
    delay = float(os.environ.get("TINY_SHARP_SLEEP", "0"))
    if delay:
        time.sleep(delay)
    pixel = image[0, :, 0, 0]
    if pixel.max() < 0.98:
        return
    red, green, blue = (bool(c > 0.98) for c in pixel)
    low = [bool(c < 0.02) for c in pixel]
    if red and blue and low[1]:
        os.kill(os.getpid(), signal.SIGKILL)
    if green and blue and low[0]:
        while True:
            time.sleep(1)
    if red and green and low[2]:
        hoard = []
        while True:
            hoard.append(b"\x01" * (64 << 20))


def create() -> TinySharp:
    """The factory named in test configurations: ``tiny_sharp:create``."""
    return TinySharp()


def write_checkpoint(path: str | os.PathLike[str], depth: float = 2.0) -> dict[str, torch.Tensor]:
    """Save a checkpoint whose values differ from the defaults, so loading is observable."""
    model = TinySharp()
    with torch.no_grad():
        model.depth.fill_(depth)
        model.log_scale.copy_(torch.tensor([-5.0, -4.5, -6.0]))
        model.rotation.copy_(torch.tensor([0.9, 0.1, -0.2, 0.3]))
        model.opacity_logit.fill_(1.5)
    state = model.state_dict()
    torch.save(state, path)
    return state
