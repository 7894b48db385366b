"""Attempt accounting: only failures that point at the job count against it.

Each "daemon" here is an owner identity; a daemon "dies" simply by not being alive (its
start time matches no process), and the next one recovers the job on the same tmp root.
"""

from __future__ import annotations

from typing import Any

import pytest

from sharpmld.core.config import Config
from sharpmld.daemon.jobrun import OUTCOME_DONE, OUTCOME_FAILED, OUTCOME_RETRY, JobRun
from sharpmld.queue import recovery
from sharpmld.queue.claim import claim
from sharpmld.queue.layout import Layout
from sharpmld.queue.lease import Owner
from sharpmld.queue.record import Job


def dead_daemon(n: int) -> Owner:
    """An owner on this host that is not running (no process has its start time)."""
    return Owner(Owner.current().host, 2**22 + n, float(n))


def config(layout: Layout, **queue: Any) -> Config:
    return Config(layout.root, None, {"queue": queue} if queue else {})


def run_for(job: Job, layout: Layout, cfg: Config) -> JobRun:
    return JobRun(job, layout, cfg, {"model": "tiny"})


def recover(layout: Layout, adopter: Owner) -> Job:
    (path,) = recovery.find_orphans(layout, adopter, lease_timeout=60)
    job = recovery.adopt(path, adopter, lease_timeout=60, state_dir=layout.state_dir)
    assert job is not None
    return job


def dispatched(run: JobRun) -> None:
    assert run.prepare() is not None
    run.begin_attempt()


def outcomes(job: Job) -> list[str]:
    return [h["outcome"] for h in Job.load(job.path).record.history]


def test_daemon_deaths_are_not_charged_to_the_job(layout: Layout) -> None:
    cfg = config(layout, max_attempts=3)
    job = claim(layout, "trip", dead_daemon(1))
    assert job is not None
    for life in range(2, 5):  # three daemons die while the job runs
        dispatched(run_for(job, layout, cfg))
        job = recover(layout, dead_daemon(life))
    assert outcomes(job) == ["daemon_died"] * 3
    record = Job.load(job.path).record
    assert record.attempts == 0 and record.daemon_restarts == 3

    run = run_for(job, layout, cfg)
    assert not run.refuse_if_exhausted()
    dispatched(run)
    run.images.append({"source": "a.png"})
    assert run.complete() == OUTCOME_DONE
    assert outcomes(run.job) == ["daemon_died"] * 3 + ["done"]
    assert Job.load(run.job.path).record.attempts == 1


def test_a_daemon_that_keeps_dying_fails_the_job_with_its_own_code(layout: Layout) -> None:
    cfg = config(layout, max_attempts=3, max_daemon_restarts=2)
    job = claim(layout, "trip", dead_daemon(1))
    assert job is not None
    for life in range(2, 4):
        dispatched(run_for(job, layout, cfg))
        job = recover(layout, dead_daemon(life))
    run = run_for(job, layout, cfg)
    assert run.refuse_if_exhausted()
    assert run.outcome == OUTCOME_FAILED
    assert run.error is not None and run.error.code == "daemon_restarts"
    assert "2 times" in run.error.message
    assert outcomes(run.job) == ["daemon_died"] * 2


def test_an_adopter_that_dies_before_dispatching_counts_as_a_daemon_death(layout: Layout) -> None:
    job = claim(layout, "trip", dead_daemon(1))
    assert job is not None
    recover(layout, dead_daemon(2))  # adopts, then dies before dispatch
    job = recover(layout, Owner.current())
    record = Job.load(job.path).record
    assert record.daemon_restarts == 2 and record.history == []


@pytest.mark.parametrize(
    ("reason", "outcome", "code"),
    [
        ("crash", "worker_crash", None),
        ("timeout", "timeout", "timeout"),
        ("memory", "out_of_memory", "out_of_memory"),
    ],
)
def test_worker_failures_are_charged_with_their_real_outcome(
    layout: Layout, reason: str, outcome: str, code: str | None
) -> None:
    cfg = config(layout, max_attempts=2)
    job = claim(layout, "trip", Owner.current())
    assert job is not None
    run = run_for(job, layout, cfg)
    dispatched(run)
    first = run.worker_lost(reason, "the worker was killed by SIGKILL")
    assert outcomes(run.job) == [outcome]
    assert Job.load(run.job.path).record.attempts == 1
    if code is not None:
        assert first == OUTCOME_FAILED and run.error is not None and run.error.code == code
        return
    assert first == OUTCOME_RETRY
    run.begin_attempt()
    assert run.worker_lost(reason, "the worker was killed by SIGKILL") == OUTCOME_FAILED
    assert run.error is not None and run.error.code == "engine_crash"
    assert outcomes(run.job) == [outcome, outcome]
    assert Job.load(run.job.path).record.attempts == 2
