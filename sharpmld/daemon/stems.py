"""Output file stems: where an input's outputs go, named after it and safe to handle.

``trip/IMG 1.jpg`` becomes ``trip-IMG_1``: one flat name per input inside the job folder,
unique even on case-insensitive volumes, bounded in bytes, never hidden and never starting
with a dash (so ``ls``, ``rm`` or ``cp`` never read a name as an option).
"""

from __future__ import annotations

import re
import unicodedata

_UNSAFE_STEM = re.compile(r"[^\w.-]+")


def output_stem(rel: str, taken: set[str]) -> str:
    """A safe, unique file stem for an input's outputs: ``trip/IMG 1.jpg`` -> ``trip-IMG_1``.

    Safe means: no separators or control characters, never hidden, never starting with a dash.
    """
    # File names are limited to 255 bytes, not characters: 100 CJK characters are 300 bytes.
    # 180 bytes leave room for "-N", the atomic writer's temp prefix and the longest suffix.
    max_bytes = 180
    parts = unicodedata.normalize("NFC", rel).split("/")
    parts[-1] = parts[-1].rsplit(".", 1)[0] if "." in parts[-1][1:] else parts[-1]
    stem = "-".join(_UNSAFE_STEM.sub("_", p).strip("._") for p in parts if p)
    # A leading dash would read as an option to shell tools (``rm -rf_--help.ply``), a leading
    # dot would hide the file; both are dropped, whatever they sit in front of.
    stem = stem.lstrip("-._")[:100]
    stem = stem.encode("utf-8")[:max_bytes].decode("utf-8", "ignore") or "image"
    candidate, n = stem, 2
    while candidate.casefold() in taken:  # casefold: "Straße" and "STRASSE" may be one name
        candidate = f"{stem}-{n}"
        n += 1
    taken.add(candidate.casefold())
    return candidate
