"""``sharpmld predict IMAGE -o DIR``: one image through the daemon's own worker, no daemon.

The model never runs in this process: predict starts the worker exactly as the daemon does
(``[worker] python``, sandbox, identity, limits, and an environment such as
``PYTORCH_ENABLE_MPS_FALLBACK`` set before that Python starts), sends it one job over the
typed protocol and steps the supervisor until the job is done. So a user whose ml-sharp
lives in a venv of its own gets from predict what the daemon would give them.
"""

from __future__ import annotations

import select
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sharpmld.core.config import Config
from sharpmld.core.errors import EngineCrash, EngineUnavailable, OutOfMemory, SharpmldError, Timeout
from sharpmld.daemon.attempts import details_text
from sharpmld.daemon.stems import output_stem
from sharpmld.protocol import (
    ImageDone,
    ImageFailed,
    ImageStarted,
    ImageTask,
    JobDone,
    JobRequest,
    WorkerLost,
    WorkerReady,
    WorkerUnavailable,
)
from sharpmld.supervisor import spawn
from sharpmld.supervisor.procs import Child
from sharpmld.supervisor.supervisor import UNAVAILABLE, Supervisor

JOB_ID = "predict"
POLL_SECONDS = 0.2
STOP_GRACE = 10.0
Progress = Callable[[str], None]


def to_stderr(line: str) -> None:
    print(f"sharpmld: {line}", file=sys.stderr, flush=True)


def launch_quietly(command: spawn.WorkerCommand) -> Child:
    """The daemon's launch, but what ml-sharp prints goes to stderr: stdout is predict's answer."""
    return spawn.launch(command, stdout=sys.stderr.fileno())


def predict(
    config: Config,
    image: Path,
    out_dir: Path,
    f_px: float | None = None,
    formats: list[str] | None = None,
    *,
    progress: Progress = to_stderr,
    spawn_worker: Callable[[spawn.WorkerCommand], Child] = launch_quietly,
) -> dict[str, Any]:
    """Run one image in a worker, its outputs written into ``out_dir``; returns the entry.

    ``formats`` (already checked) replaces the configuration's ``[outputs] formats``. Raises
    ``EngineUnavailable`` when the worker cannot load the model, as the daemon reports it.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    task = ImageTask(image.name, str(image.resolve()), output_stem(image.name, set()))
    chosen: dict[str, Any] = {} if formats is None else {"formats": tuple(formats)}
    request = JobRequest.configured(
        config, job_id=JOB_ID, job_dir=str(out_dir.resolve()), images=(task,), f_px=f_px, **chosen
    )
    supervisor = Supervisor(config, spawn_worker=spawn_worker)
    with tempfile.TemporaryDirectory(prefix="sharpmld-predict-") as scratch:
        if python := config.worker_python:
            supervisor.package_dir = spawn.package_path_for(python, Path(scratch))
        supervisor.start(time.monotonic())
        try:
            return _run(supervisor, request, progress)
        finally:
            supervisor.stop(STOP_GRACE)


def _run(supervisor: Supervisor, request: JobRequest, progress: Progress) -> dict[str, Any]:
    """Step the supervisor until the one job is done; its own limits apply as in the daemon."""
    outcome: dict[str, Any] = {}
    while True:
        fd = supervisor.fileno()
        select.select([fd] if fd is not None else [], [], [], POLL_SECONDS)
        now = time.monotonic()
        for event in supervisor.step(now):
            if isinstance(event, WorkerReady):
                progress(f"model loaded on {event.device} in {event.load_seconds:.1f} s")
                outcome = {"device": event.device, "load_seconds": event.load_seconds}
                supervisor.send_job(request, now)
            elif isinstance(event, WorkerUnavailable):
                raise EngineUnavailable(event.message)
            elif isinstance(event, ImageStarted):
                progress(f"running the model on {event.rel}")
            elif isinstance(event, ImageDone):
                result = {"source": event.rel, "sha256": event.sha256, **event.result}
                outcome = {"ok": True, **outcome, "result": result}
            elif isinstance(event, ImageFailed):
                outcome = _failed(event.code, event.message)
            elif isinstance(event, WorkerLost):
                return _lost(event)
            elif isinstance(event, JobDone):
                return (
                    outcome if "ok" in outcome else _failed("internal_error", "the worker reported nothing")
                )
        if supervisor.state == UNAVAILABLE:  # it could not even be started
            raise EngineUnavailable(supervisor.unavailable_reason)


def _lost(event: WorkerLost) -> dict[str, Any]:
    """The worker died or was stopped by a limit: the job's error, as the daemon words it."""
    error: SharpmldError
    if event.reason == "timeout":
        error = Timeout(details_text(Timeout.advice, event.detail))
    elif event.reason == "memory":
        error = OutOfMemory(details_text(OutOfMemory.advice, event.detail))
    else:
        error = EngineCrash(details_text(EngineCrash.advice, event.detail))
    return _failed(error.code, error.message)


def _failed(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}
