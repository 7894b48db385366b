"""The checkpoint's SHA-256, computed once per file version and remembered.

Hashing 2.8 GB takes seconds, so the digest is cached under ``.sharpmld/`` keyed by the
file's path, size and modification time, and computed in the background at start-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from pathlib import Path

from sharpmld.core import fsio

CACHE_NAME = "checkpoint-sha256.json"


def _key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def checkpoint_sha256(path: Path, cache_dir: Path) -> str | None:
    """The digest of ``path``, from the cache when the file is unchanged; None if missing."""
    try:
        key = _key(path)
    except OSError:
        return None
    cache = cache_dir / CACHE_NAME
    try:
        cached = json.loads(cache.read_text("utf-8"))
        if cached.get("key") == key:
            return str(cached["sha256"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(4 << 20):
                digest.update(chunk)
    except OSError:
        return None
    value = digest.hexdigest()
    with contextlib.suppress(OSError):
        fsio.write_json(cache, {"key": key, "sha256": value})
    return value


class CheckpointHasher:
    """Computes the digest on a thread so the daemon's loop never waits on 2.8 GB of reads."""

    def __init__(self, path: Path, cache_dir: Path) -> None:
        self.path = path
        self.cache_dir = cache_dir
        self.value: str | None = None
        self.done = threading.Event()

    def start(self) -> None:
        self.done.clear()
        threading.Thread(target=self._run, name="checkpoint-hash", daemon=True).start()

    def _run(self) -> None:
        self.value = checkpoint_sha256(self.path, self.cache_dir)
        self.done.set()
