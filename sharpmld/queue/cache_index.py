"""Skip work already done: outputs are reused for an image seen before with the same settings.

The key is a hash of the image as the model sees it (upright, metadata stripped), its focal
length, the checkpoint's hash and every setting that changes the outputs. The index lives in
``.sharpmld/cache/`` (one small JSON file per key, so it survives restarts and needs no
locking) and points at the outputs of the job that produced them. An entry whose files were
removed (by retention, or by a person) is forgotten the first time it is looked at, never
trusted. Reused outputs are hard-linked where the filesystem allows, else copied.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from sharpmld.core import fsio
from sharpmld.queue.lease import Owner

CACHE_DIR = "cache"
"""The index's folder inside the root's state folder (``.sharpmld/``)."""
CACHE_VERSION = 1  # bump when an output format's bytes change for the same input


def salt(
    *,
    checkpoint_sha256: str | None,
    factory: str,
    formats: list[str],
    f_px_override: float | None,
    precision: str = "fp32",
    colour: str = "srgb",
    **outputs: Any,
) -> str:
    """The part of the key that comes from the job and the engine, not the image.

    ``outputs`` are any further settings that change what is written (previews, orbit).
    A half-precision result must never answer an fp32 request (or the other way round); fp32
    adds nothing to the key, so the entries cached before the setting existed still match.
    Likewise ``colour``: "as-is" output must never answer an "srgb" request; "srgb" adds
    nothing, because a photo without a profile decodes to the same pixels as before, and one
    with a profile decodes to different pixels, hence a different key, anyway.
    """
    parts = {
        "v": CACHE_VERSION,
        "checkpoint": checkpoint_sha256 or "",
        "factory": factory,
        "formats": sorted(formats),
        "f_px": f_px_override,
        **({} if precision == "fp32" else {"precision": precision}),
        **({} if colour == "srgb" else {"colour": colour}),
        **outputs,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def image_key(job_salt: str, pixels_sha256: str, f_px: float) -> str:
    """The key of one image within one job's settings."""
    return hashlib.sha256(f"{job_salt}|{pixels_sha256}|{f_px!r}".encode()).hexdigest()


def _entry_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.json"


def lookup(cache_dir: Path, key: str) -> dict[str, Any] | None:
    """The entry for ``key`` if every output it names still exists with its size.

    A missing or damaged entry is None; a cache that cannot be read at all (permissions)
    raises OSError, for the caller to treat as a miss and say so once.
    """
    path = _entry_path(cache_dir, key)
    try:
        entry = json.loads(path.read_text("utf-8"))
        outputs = entry["outputs"]
        for item in outputs.values():
            if os.stat(item["path"]).st_size != int(item["bytes"]):
                raise FileNotFoundError(item["path"])
    except FileNotFoundError:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return entry if isinstance(entry, dict) else None


def store(cache_dir: Path, key: str, entry: dict[str, Any], *, owner: Owner | None = None) -> None:
    """Remember (or refresh) where the outputs for ``key`` are; ``owner``, the daemon writing,
    is named in the temp file so that ``sweep_leftovers`` knows when it is safe to remove."""
    path = _entry_path(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fsio.write_json(path, entry, tag=owner.tag() if owner else "")


def sweep_leftovers(cache_dir: Path, *, server_now: float, stale_after: float) -> list[Path]:
    """Remove the temp files of entries whose write was cut short (a daemon killed mid-write).

    Nothing else ever looks at them, so they would pile up. Several daemons may share the
    root, so a temp file goes only when its writer, named in it, is a process of this host
    that is gone; one from another host (or from before names carried a writer) only once
    older than ``stale_after`` by the file server's clock, as for a claim's staging folder.
    """
    removed: list[Path] = []
    try:
        shards = [d for d in os.scandir(cache_dir) if d.is_dir(follow_symlinks=False)]
    except OSError:
        return removed
    for shard in shards:
        try:
            names = [n for n in os.listdir(shard.path) if fsio.is_temp_name(n)]
        except OSError:
            continue
        for name in names:
            path = Path(shard.path) / name
            writer = Owner.from_tag(name)
            if writer is not None:
                abandoned = not writer.is_alive()
            else:
                try:
                    abandoned = server_now - path.lstat().st_mtime > stale_after
                except OSError:
                    continue
            if abandoned:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return removed


def link_or_copy(source: Path, target: Path) -> None:
    """Put ``source``'s bytes at ``target`` atomically: a hard link if possible, else a copy."""
    fsio.link_or_copy(source, target)
