"""The worker's memory cap: ``[worker] max_memory_mb``, resolved to a number in one place.

``"auto"`` (the default) is a share of the machine's physical memory, because one fixed figure
fits no range of machines: 16000 MB let the MPS allocator grow to about 10.9 GB on an 8 GB Mac,
where it swaps long before the daemon steps in. A number sets the cap in MB; 0 turns it off.
The supervisor kills the worker above the cap, the worker's MPS allocator is capped to it and
``sharpmld doctor`` states it, all from :func:`resolve`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sharpmld.core.units import MB

AUTO = "auto"
AUTO_FRACTION = 0.6
"""Share of physical memory the worker may hold when the cap is ``"auto"``: enough for the model
and its activations, while the system and the daemon keep the rest without swapping."""

GB = 1 << 30
"""The "GB" people read on a Mac's memory (8, 16, 24 GB are binary gigabytes)."""


def physical_ram() -> int:
    """Bytes of physical memory of this machine (psutil: ``virtual_memory().total``)."""
    import psutil  # here, not at import time: ``sharpmld --help`` need not load it

    return int(psutil.virtual_memory().total)


@dataclass(frozen=True)
class MemoryCap:
    """The resolved cap and where it came from, for the messages that quote it."""

    mb: float  # 0: no cap
    configured: float | str  # the value as set in the configuration
    ram_bytes: int = 0  # the physical memory an "auto" cap was derived from

    @property
    def bytes(self) -> int:
        return int(self.mb * MB)

    def describe(self) -> str:
        """The cap, how it was derived and how to change it, for ``sharpmld doctor``."""
        change = "set [worker] max_memory_mb to change"
        if not self.mb:
            return f"off (max_memory_mb = 0; {change})"
        if self.configured == AUTO:
            how = f"{AUTO_FRACTION:g} × {self.ram_bytes / GB:.3g} GB RAM"
        else:
            how = f"max_memory_mb = {self.configured:g}"
        return f"{self.bytes / GB:.3g} GB ({how}; {change})"


def resolve(configured: float | str, ram: Callable[[], int] = physical_ram) -> MemoryCap:
    """The cap for ``[worker] max_memory_mb`` as validated by the configuration.

    ``ram`` is only asked for ``"auto"``; tests pass the memory of a machine they stand in for.
    """
    if configured == AUTO:
        total = ram()
        return MemoryCap(mb=round(AUTO_FRACTION * total / MB, 1), configured=AUTO, ram_bytes=total)
    if isinstance(configured, str):
        raise ValueError(f"max_memory_mb must be {AUTO!r} or a number, not {configured!r}")
    return MemoryCap(mb=float(configured), configured=configured)
