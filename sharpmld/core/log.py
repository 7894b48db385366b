"""Logging: structlog, JSON lines for the service manager, readable text on a terminal.

Every line about a job carries its ``job_id``; those lines are also appended to the job's own
``job.log`` while the job is registered here, so a person looking at one job folder finds its
story inside it.

Errors logged with ``exc_info`` carry their traceback as text (``exception``), and Python
warnings (a library's ``RuntimeWarning`` in its own thread, say) and libraries' standard
``logging`` records become log lines through the same processors, instead of raw text on
stderr that breaks the JSON stream.
"""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog

from sharpmld.core import fsio

_job_logs: dict[str, Path] = {}
_lock = threading.Lock()


def attach_job_log(job_id: str, path: Path) -> None:
    """Start (or move) the copy of a job's lines into ``path``."""
    with _lock:
        _job_logs[job_id] = path


def detach_job_log(job_id: str) -> None:
    """Stop copying a job's lines."""
    with _lock:
        _job_logs.pop(job_id, None)


def _copy_to_job_log(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    job_id = event_dict.get("job_id")
    if job_id is not None:
        with _lock:
            path = _job_logs.get(str(job_id))
        if path is not None:
            # the job's copy is always JSON: an error's traceback as text, never a bare ``true``
            copy = structlog.processors.format_exc_info(None, "", dict(event_dict))
            try:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(fsio.to_json(dict(copy), indent=None) + "\n")
            except OSError:
                pass
    return event_dict


def _printable(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """File names that are not valid UTF-8 must not break the log stream: escape them."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                event_dict[key] = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return event_dict


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` for this process: one structured log line per warning shown.

    The warnings filters still decide what is shown (by default once per place); this only
    decides where it goes.
    """
    get("sharpmld.warnings").warning(
        "python warning",
        category=category.__name__,
        message=str(message),
        filename=filename,
        lineno=lineno,
    )


class _StdlibToStructlog(logging.Handler):
    """Hands a library's ``logging`` record to structlog, so it is rendered like our own."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name}
            if record.exc_info:
                fields["exc_info"] = record.exc_info
            get(record.name).log(record.levelno, record.getMessage(), **fields)
        except Exception:
            self.handleError(record)


def _route_stdlib_logging(level: int) -> None:
    """One handler on the root logger (replacing ours from an earlier call).

    Only warnings and worse: a library's info and debug chatter (watchdog logs every event
    at debug) is not the daemon's story, even when the daemon itself logs at debug.
    """
    level = max(level, logging.WARNING)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StdlibToStructlog):
            root.removeHandler(handler)
    root.addHandler(_StdlibToStructlog(level))
    root.setLevel(level)


def configure(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """Set up structlog once for this process, and send Python warnings through it."""
    out = stream or sys.stdout
    levelno = logging.getLevelNamesMapping()[level.upper()]
    pretty = fmt == "console" or (fmt == "auto" and hasattr(out, "isatty") and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False) if pretty else structlog.processors.JSONRenderer()
    )
    # JSON needs exc_info turned into "exception" text; the console renderer formats it itself.
    tracebacks: list[Any] = [] if pretty else [structlog.processors.format_exc_info]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *tracebacks,
            _copy_to_job_log,
            _printable,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(levelno),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Replacing the one hook (not adding a handler) keeps this idempotent: configure twice,
    # still one line per warning.
    warnings.showwarning = _show_warning
    _route_stdlib_logging(levelno)


def get(name: str = "sharpmld") -> Any:
    """A logger; bind ``job_id=`` to it for job lines."""
    return structlog.get_logger(name)
