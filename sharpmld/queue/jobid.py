"""Job ids: unique, sortable by time, and still recognisably the name a person dropped."""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import UTC, datetime

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_JOB_ID = re.compile(r"^\d{8}T\d{6}Z-[A-Za-z0-9._-]{1,40}-[0-9a-f]{4,8}$")
MAX_SLUG = 40


def slug(name: str) -> str:
    """An ASCII, path-safe form of ``name``: accents folded, the rest collapsed to dashes."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    text = _UNSAFE.sub("-", folded).strip("-._")
    text = re.sub(r"-{2,}", "-", text)[:MAX_SLUG].strip("-._")
    return text or "job"


def new_job_id(original_name: str, now: datetime | None = None, *, is_file: bool = False) -> str:
    """``20261121T223400Z-kitchen-3f9a``: UTC time first so a plain sort is chronological."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    base = original_name.rsplit(".", 1)[0] if is_file and "." in original_name[1:] else original_name
    return f"{stamp}-{slug(base)}-{secrets.token_hex(2)}"


def is_job_id(name: str) -> bool:
    """Whether a folder name under a state folder is one of ours."""
    return bool(_JOB_ID.match(name))
