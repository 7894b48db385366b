"""What a finished job says to people: ``result.json``, and ``ERROR.txt`` with ``error.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sharpmld.core import fsio
from sharpmld.core.errors import SharpmldError
from sharpmld.queue.layout import ERROR_JSON, ERROR_TXT, INPUT_DIR, RESULT_FILE


def write_result(job_dir: Path, result: dict[str, Any]) -> None:
    """The job's full account, written atomically before the job leaves ``working/``."""
    fsio.write_json(job_dir / RESULT_FILE, result)


def write_error(
    job_dir: Path,
    error: SharpmldError,
    *,
    job_id: str,
    original_name: str,
    rejected: list[dict[str, Any]] | None = None,
    ignored: list[str] | None = None,
) -> None:
    """``ERROR.txt`` for a person and ``error.json`` for a script."""
    fsio.write_json(
        job_dir / ERROR_JSON,
        {**error.to_dict(), "job_id": job_id, "original_name": original_name},
    )
    fsio.write_text(
        job_dir / ERROR_TXT, error_text(error, job_id, original_name, rejected or [], ignored or [])
    )


def display(name: str) -> str:
    """A name safe to print: control characters and undecodable bytes shown as escapes."""
    out = []
    for ch in name:
        if ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(ch)
        else:
            out.append(
                ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                if ord(ch) < 0xD800 or ord(ch) > 0xDFFF
                else f"\\x{ord(ch) - 0xDC00:02x}"
            )
    return "".join(out)


def error_text(
    error: SharpmldError,
    job_id: str,
    original_name: str,
    rejected: list[dict[str, Any]],
    ignored: list[str] | None = None,
) -> str:
    """The plain-words explanation: what happened, what to do, where the files are."""
    lines = [
        f'sharpmld could not turn "{display(original_name)}" into splats.',
        "",
        error.message,
        "",
    ]
    if error.advice not in error.message and "{" not in error.advice:  # advice is said once
        lines += [error.advice, ""]
    if rejected:
        lines.append("Files that could not be used:")
        lines += [f"  - {display(r['source'])}: {r['message']}" for r in rejected]
        lines.append("")
    if ignored:
        lines.append("Ignored as hidden or system files (names starting with a dot, __MACOSX, ...):")
        lines += [f"  - {display(name)}" for name in ignored[:50]]
        lines.append("")
    lines += [
        f"Your original files are untouched, in the {INPUT_DIR}/ folder next to this file.",
        f"To try again after fixing the problem: sharpmld retry {job_id}",
        "(or move that folder back into the inbox).",
        "",
        f"Job: {job_id}",
        f"Error code: {error.code}",
    ]
    return "\n".join(lines) + "\n"
