"""ERROR.txt says each piece of advice once, honestly, and never shows a Python repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from sharpmld.core.config import Config
from sharpmld.core.errors import EngineCrash, JobFailed, OutOfMemory, Timeout
from sharpmld.daemon.jobrun import OUTCOME_FAILED, OUTCOME_RETRY, JobRun
from sharpmld.queue.claim import claim
from sharpmld.queue.layout import ERROR_TXT, Layout
from sharpmld.queue.lease import Owner
from tests.intake import corpus


def _run(tmp_path: Path, max_attempts: int = 2) -> JobRun:
    layout = Layout(tmp_path / "root")
    layout.ensure()
    (layout.inbox / "trip").mkdir()
    corpus.write_jpeg(layout.inbox / "trip" / "a.jpg")
    job = claim(layout, "trip", Owner.current())
    assert job is not None
    config = Config(root=layout.root, path=None, sections={"queue": {"max_attempts": max_attempts}})
    run = JobRun(job, layout, config, engine={})
    assert run.prepare() is not None
    return run


def _error_txt(run: JobRun) -> str:
    return (run.layout.failed / run.job.job_id / ERROR_TXT).read_text("utf-8")


def test_engine_crash_after_the_last_attempt_says_its_advice_once_and_not_try_again(
    tmp_path: Path,
) -> None:
    run = _run(tmp_path, max_attempts=2)
    run.begin_attempt()
    assert run.worker_lost("crash", "the worker was killed by SIGKILL") == OUTCOME_RETRY
    run.begin_attempt()
    assert run.worker_lost("crash", "the worker was killed by SIGKILL") == OUTCOME_FAILED
    text = _error_txt(run)
    assert text.count(EngineCrash.advice) == 1
    assert "Please try again" not in text
    assert "2 attempts" in text
    assert "killed by SIGKILL" in text


@pytest.mark.parametrize(
    ("reason", "error"), [("timeout", Timeout), ("memory", OutOfMemory)], ids=["timeout", "memory"]
)
def test_a_lost_worker_explains_itself_once(tmp_path: Path, reason: str, error: type[JobFailed]) -> None:
    run = _run(tmp_path)
    run.begin_attempt()
    assert run.worker_lost(reason, "an image took over 300 s") == OUTCOME_FAILED
    text = _error_txt(run)
    assert text.count(error.advice) == 1
    assert "An image took over 300 s" in text


def test_a_bug_in_the_daemon_fails_the_job_without_showing_a_repr(tmp_path: Path) -> None:
    from sharpmld.daemon import mishaps
    from sharpmld.daemon.loop import Daemon

    run = _run(tmp_path)
    config = Config(root=run.layout.root, path=None, sections={"metrics": {"enabled": False}})
    daemon = Daemon(config)
    daemon.current = run
    mishaps.on_step_error(daemon, KeyError("images"), now=0.0)
    text = _error_txt(run)
    assert "KeyError(" not in text
    assert "internal_error" in text
