"""The JSON log carries what a person needs: tracebacks for errors, warnings as log lines."""

from __future__ import annotations

import io
import json
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from sharpmld.core import log


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """Each test configures logging for itself; leave no configuration behind."""
    with warnings.catch_warnings():  # restores warnings.showwarning and the filters afterwards
        yield
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def fail_deep() -> None:
    raise ValueError("the disk said no")


def test_exception_line_in_json_carries_the_traceback(tmp_path: Path) -> None:
    out = io.StringIO()
    log.configure("info", "json", stream=out)
    job_log = tmp_path / "job.log"
    log.attach_job_log("job-1", job_log)
    try:
        try:
            fail_deep()
        except ValueError:
            log.get().bind(job_id="job-1").exception("internal error in the daemon loop")
    finally:
        log.detach_job_log("job-1")
    (line,) = lines(out)
    assert "exc_info" not in line
    assert "Traceback (most recent call last)" in line["exception"]
    assert "fail_deep" in line["exception"] and "ValueError: the disk said no" in line["exception"]
    # the job's own log gets the same story, not a bare ``true``
    (copied,) = [json.loads(x) for x in job_log.read_text().splitlines()]
    assert "ValueError: the disk said no" in copied["exception"]


def test_warning_in_another_thread_becomes_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    log.configure("info", "json", stream=out)
    log.configure("info", "json", stream=out)  # configuring twice must not double the lines
    warnings.simplefilter("always")

    def observer_thread() -> None:
        warnings.warn("coroutine was never awaited", RuntimeWarning, stacklevel=1)

    thread = threading.Thread(target=observer_thread)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()

    captured = capsys.readouterr()
    assert "RuntimeWarning" not in captured.err
    assert "never awaited" not in captured.err
    (line,) = lines(out)
    assert line["level"] == "warning"
    assert line["category"] == "RuntimeWarning"
    assert line["message"] == "coroutine was never awaited"
    assert line["filename"].endswith("test_log.py") and isinstance(line["lineno"], int)


def test_warnings_below_the_configured_level_are_dropped() -> None:
    out = io.StringIO()
    log.configure("error", "json", stream=out)
    warnings.simplefilter("always")
    warnings.warn("not now", UserWarning, stacklevel=1)
    assert lines(out) == []


def test_console_output_and_job_log_both_carry_the_traceback(tmp_path: Path) -> None:
    out = io.StringIO()
    log.configure("info", "console", stream=out)
    job_log = tmp_path / "job.log"
    log.attach_job_log("job-2", job_log)
    try:
        try:
            fail_deep()
        except ValueError:
            log.get().bind(job_id="job-2").exception("internal error in the daemon loop")
    finally:
        log.detach_job_log("job-2")
    assert "ValueError: the disk said no" in out.getvalue()
    (copied,) = [json.loads(x) for x in job_log.read_text().splitlines()]
    assert "exc_info" not in copied
    assert "ValueError: the disk said no" in copied["exception"]


def test_a_library_logging_through_stdlib_lands_in_the_json_log_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import logging

    out = io.StringIO()
    log.configure("info", "json", stream=out)
    log.configure("info", "json", stream=out)
    try:
        logging.getLogger("watchdog.observers.inotify").warning("watch limit %d reached", 8192)
        logging.getLogger("watchdog.observers.inotify").info("chatter, not our story")
    finally:
        for handler in list(logging.getLogger().handlers):
            if type(handler).__module__ == log.__name__:
                logging.getLogger().removeHandler(handler)
    assert capsys.readouterr().err == ""
    (line,) = lines(out)
    assert line["event"] == "watch limit 8192 reached"
    assert line["level"] == "warning" and line["logger"] == "watchdog.observers.inotify"
