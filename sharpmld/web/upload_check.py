"""``POST /api/jobs/check``: the upload's rules run on what the page knows before it sends.

A refusal found by the upload itself comes only once the browser has sent the whole body
(see ``upload``), which for a few hundred megabytes is a wait. So the page first sends each
file's path, size and first bytes (a few kilobytes each), and this runs the very same checks
on them (names, count, sizes, type by magic) and answers at once. It keeps nothing, and
proves nothing about the bytes that follow: the upload checks everything again.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from starlette.requests import Request

from sharpmld.core.errors import BadUpload, EmptyFile, UnsafeName, format_advice
from sharpmld.intake.magic import DESCRIBE_BYTES
from sharpmld.intake.names import JOB_TOML
from sharpmld.web.upload_names import clean_path
from sharpmld.web.upload_receiver import (
    MAX_JOB_TOML_BYTES,
    UploadLimits,
    check_count,
    check_size,
    check_total,
    judge,
)

PER_FILE_BYTES = 2 * DESCRIBE_BYTES
"""What one file's entry may take in the request: its head in base64, its path, its size."""


def check(files: list[dict[str, Any]], limits: UploadLimits) -> list[str]:
    """Raise the refusal the upload of these files would get; return the paths it would skip."""
    seen: set[str] = set()
    skipped: list[str] = []
    images = total = 0
    for entry in files:
        try:
            name, size = str(entry["path"]), int(entry["size"])
            head = base64.b64decode(str(entry["head"]), validate=True)[:DESCRIBE_BYTES]
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise BadUpload("Each file needs a path, a size and its first bytes (base64).") from None
        parts = clean_path(name, limits.max_depth)
        if parts is None:
            skipped.append(name)
            continue
        rel = "/".join(parts)
        if rel in seen:
            raise UnsafeName(format_advice(UnsafeName, name=repr(rel)), file=rel)
        seen.add(rel)
        if parts == (JOB_TOML,):
            check_size(rel, "settings", size, MAX_JOB_TOML_BYTES)
            continue
        images += 1
        check_count(rel, images, limits)
        if size <= 0:
            raise EmptyFile(format_advice(EmptyFile), file=rel)
        kind, limit = judge(rel, head, limits)
        check_size(rel, kind, size, limit)
        total += size
        check_total(rel, total, limits)
    return skipped


async def read_files(request: Request, limits: UploadLimits) -> list[dict[str, Any]]:
    """The request's ``{"files": [...]}``, read up to the size such a list can have."""
    cap = (limits.max_images + 64) * PER_FILE_BYTES
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise BadUpload(f"Too many files to check at once (at most {limits.max_images} photos).")
    try:
        data = json.loads(bytes(body))
    except ValueError:
        raise BadUpload("The check needs a JSON body.") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise BadUpload('The check needs {"files": [{"path", "size", "head"}, ...]}.')
    return files
